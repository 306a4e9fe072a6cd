using System.Globalization;
using System.Numerics;
using System.Text;

namespace Engine.Chat.Jinja;

/// <summary>Python's semantics for template values: truthiness, str() and repr(), equality and ordering, iteration.</summary>
internal static class Py
{
    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        bool => "bool",
        long or BigInteger => "int",
        double => "float",
        string => "str",
        JinjaList { IsTuple: true } => "tuple",
        JinjaList => "list",
        JinjaDict => "dict",
        JinjaIterator i => i.TypeName,
        Markup => "Markup",
        Undefined => "Undefined",
        Namespace => "Namespace",
        LoopContext => "LoopContext",
        Cycler => "Cycler",
        JinjaCallable => "function",
        _ => v.GetType().Name,
    };

    /// <summary>A Markup as its text; any other value as is.</summary>
    public static object? Plain(object? v) => v is Markup m ? m.Text : v;

    public static bool Truthy(object? v) => v switch
    {
        Markup m => m.Text.Length > 0,
        null or Undefined => false,
        bool b => b,
        long n => n != 0,
        BigInteger => true,
        double d => d != 0,
        string s => s.Length > 0,
        JinjaList l => l.Count > 0,
        JinjaDict d => d.Count > 0,
        _ => true,
    };

    /// <summary>Python str(): what {{ }} prints.</summary>
    public static string Str(object? v) => v switch
    {
        string s => s,
        Markup m => m.Text,
        Undefined => "",
        _ => Repr(v),
    };

    public static string Repr(object? v)
    {
        var sb = new StringBuilder();
        AppendRepr(sb, v, 0);
        return sb.ToString();
    }

    static void AppendRepr(StringBuilder sb, object? v, int depth)
    {
        if (depth > 100) throw new JinjaTemplateException("value nested too deeply to print");
        JinjaInterpreter.Charge();
        switch (v)
        {
            case null: sb.Append("None"); break;
            case bool b: sb.Append(b ? "True" : "False"); break;
            case long n: sb.Append(n.ToString(CultureInfo.InvariantCulture)); break;
            case BigInteger big: sb.Append(big.ToString(CultureInfo.InvariantCulture)); break;
            case double d: sb.Append(FloatRepr(d)); break;
            case string s: AppendStringRepr(sb, s); break;
            case Undefined: break;
            case JinjaList l:
                sb.Append(l.IsTuple ? '(' : '[');
                for (int i = 0; i < l.Count; i++)
                {
                    if (i > 0) sb.Append(", ");
                    AppendRepr(sb, l.Items[i], depth + 1);
                }
                if (l.IsTuple && l.Count == 1) sb.Append(',');
                sb.Append(l.IsTuple ? ')' : ']');
                break;
            case JinjaDict d:
                sb.Append('{');
                bool first = true;
                foreach (var (key, value) in d.Pairs)
                {
                    if (!first) sb.Append(", ");
                    first = false;
                    AppendRepr(sb, key, depth + 1);
                    sb.Append(": ");
                    AppendRepr(sb, value, depth + 1);
                }
                sb.Append('}');
                break;
            case Namespace: sb.Append("<Namespace>"); break;
            case LoopContext: sb.Append("<LoopContext>"); break;
            case Cycler: sb.Append("<Cycler>"); break;
            case JinjaCallable f: sb.Append("<function ").Append(f.Name).Append('>'); break;
            case JinjaIterator i: sb.Append('<').Append(i.TypeName).Append(" object>"); break;
            case Markup m: sb.Append("Markup("); AppendStringRepr(sb, m.Text); sb.Append(')'); break;
            default: sb.Append(v); break;
        }
    }

    /// <summary>Python's repr of a str: single quotes unless the text has ' and no ", escapes for control characters.</summary>
    static void AppendStringRepr(StringBuilder sb, string s)
    {
        char quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        sb.Append(quote);
        foreach (var rune in s.EnumerateRunes())
        {
            int c = rune.Value;
            if (c == quote || c == '\\') sb.Append('\\').Append((char)c);
            else if (c == '\n') sb.Append("\\n");
            else if (c == '\r') sb.Append("\\r");
            else if (c == '\t') sb.Append("\\t");
            else if (c < 0x20 || c == 0x7F) sb.Append("\\x").Append(c.ToString("x2", CultureInfo.InvariantCulture));
            else if (IsUnprintable(rune))
                sb.Append(c <= 0xFF ? "\\x" + c.ToString("x2", CultureInfo.InvariantCulture)
                        : c <= 0xFFFF ? "\\u" + c.ToString("x4", CultureInfo.InvariantCulture)
                        : "\\U" + c.ToString("x8", CultureInfo.InvariantCulture));
            else sb.Append(rune.ToString());
        }
        sb.Append(quote);
    }

    /// <summary>Python's str.isprintable for one character: not a control, format, separator (other than space),
    /// surrogate, private-use or unassigned character.</summary>
    static bool IsUnprintable(Rune r) => r.Value != ' ' && Rune.GetUnicodeCategory(r) is UnicodeCategory.Control
        or UnicodeCategory.Format or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned
        or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator or UnicodeCategory.SpaceSeparator;

    /// <summary>Python's float repr: the shortest text that reads back exactly, "1.0" for whole numbers, exponent form
    /// below 1e-4 and from 1e16 ("1e-05", "1e+16").</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        if (d == 0) return double.IsNegative(d) ? "-0.0" : "0.0";
        // "R" is the shortest round-trip text, as Python's repr; only its layout differs.
        var (negative, digits, exponent) = Decompose(d.ToString("R", CultureInfo.InvariantCulture));
        var sign = negative ? "-" : "";
        if (exponent < -4 || exponent >= 16)
        {
            var mantissa = digits.Length == 1 ? digits : digits[0] + "." + digits[1..];
            return $"{sign}{mantissa}e{(exponent < 0 ? "-" : "+")}{Math.Abs(exponent):00}";
        }
        if (exponent < 0) return sign + "0." + new string('0', -exponent - 1) + digits;
        if (digits.Length <= exponent + 1) return sign + digits + new string('0', exponent + 1 - digits.Length) + ".0";
        return sign + digits[..(exponent + 1)] + "." + digits[(exponent + 1)..];
    }

    /// <summary>Splits .NET's round-trip text ("-1.25E-05", "123.5") into sign, significant digits and the decimal
    /// exponent of the first digit.</summary>
    static (bool Negative, string Digits, int Exponent) Decompose(string text)
    {
        bool negative = text.StartsWith('-');
        if (negative) text = text[1..];
        int exponent = 0;
        int e = text.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            exponent = int.Parse(text[(e + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            text = text[..e];
        }
        int dot = text.IndexOf('.');
        string intPart = dot < 0 ? text : text[..dot], frac = dot < 0 ? "" : text[(dot + 1)..];
        var all = intPart + frac;
        int firstNonZero = 0;
        while (firstNonZero < all.Length - 1 && all[firstNonZero] == '0') firstNonZero++;
        exponent += intPart.Length - 1 - firstNonZero;
        var digits = all[firstNonZero..].TrimEnd('0');
        return (negative, digits.Length == 0 ? "0" : digits, exponent);
    }

    /// <summary>Python int: long while it fits, BigInteger beyond (only arithmetic and JSON input make one).</summary>
    public static bool IsNumber(object? v) => v is long or double or bool or BigInteger;

    public static object Normalize(BigInteger v) => v >= long.MinValue && v <= long.MaxValue ? (long)v : v;

    public static BigInteger ToBig(object? v) => v switch
    {
        BigInteger big => big,
        bool b => b ? 1 : 0,
        _ => (long)v!,
    };

    public static double ToDouble(object? v) => v switch
    {
        long n => n,
        BigInteger big => (double)big,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw new JinjaTemplateException($"expected a number, got '{TypeName(v)}'"),
    };

    /// <summary>Python ==: numbers by value across int/float/bool, sequences and dicts by items; Undefined equals only
    /// Undefined.</summary>
    /// <summary>How deep Equal and Compare follow nested lists and dicts (Python stops at its recursion limit too); a
    /// deeper value is an error rather than a stack overflow.</summary>
    const int MaxCompareDepth = 200;

    public static bool Equal(object? a, object? b) => EqualAt(a, b, 0);

    static bool EqualAt(object? a, object? b, int depth)
    {
        if (depth > MaxCompareDepth) throw new JinjaTemplateException("maximum recursion depth exceeded in comparison");
        a = Plain(a);
        b = Plain(b);
        if (ReferenceEquals(a, b)) return true;
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return ToDouble(a) == ToDouble(b);
            if (a is BigInteger || b is BigInteger) return ToBig(a) == ToBig(b);
            return ToLong(a) == ToLong(b);
        }
        switch (a)
        {
            case null: return b is null;
            case string s: return b is string t && string.Equals(s, t, StringComparison.Ordinal);
            case Undefined: return b is Undefined;
            case JinjaList l when b is JinjaList m && l.IsTuple == m.IsTuple && l.Count == m.Count:
                for (int i = 0; i < l.Count; i++)
                {
                    JinjaInterpreter.Charge();
                    if (!EqualAt(l.Items[i], m.Items[i], depth + 1)) return false;
                }
                return true;
            case JinjaDict d when b is JinjaDict e && d.Count == e.Count:
                foreach (var (key, value) in d.Pairs)
                {
                    JinjaInterpreter.Charge();
                    if (!e.TryGet(key, out var other) || !EqualAt(value, other, depth + 1)) return false;
                }
                return true;
            default: return false;
        }
    }

    static long ToLong(object? v) => v switch { long n => n, bool b => b ? 1 : 0, _ => 0 };

    /// <summary>Python ordering (&lt;): numbers with numbers, str with str, lists and tuples item by item.</summary>
    public static int Compare(object? a, object? b, string op = "<") => CompareAt(a, b, op, 0);

    static int CompareAt(object? a, object? b, string op, int depth)
    {
        if (depth > MaxCompareDepth) throw new JinjaTemplateException("maximum recursion depth exceeded in comparison");
        a = Plain(a);
        b = Plain(b);
        if (a is Undefined u) throw u.Error();
        if (b is Undefined v) throw v.Error();
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return ToDouble(a).CompareTo(ToDouble(b));
            if (a is BigInteger || b is BigInteger) return ToBig(a).CompareTo(ToBig(b));
            return ToLong(a).CompareTo(ToLong(b));
        }
        if (a is string s && b is string t) return string.CompareOrdinal(s, t) switch { < 0 => -1, > 0 => 1, _ => 0 };
        if (a is JinjaList l && b is JinjaList m && l.IsTuple == m.IsTuple)
        {
            for (int i = 0; i < Math.Min(l.Count, m.Count); i++)
            {
                JinjaInterpreter.Charge();
                if (!EqualAt(l.Items[i], m.Items[i], depth + 1)) return CompareAt(l.Items[i], m.Items[i], op, depth + 1);
            }
            return l.Count.CompareTo(m.Count);
        }
        throw new JinjaTemplateException($"'{op}' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    /// <summary>Python's sorted(items, key=key, reverse=descending): stable, ordered by <see cref="Compare"/>; keys that
    /// cannot be ordered are a template error (LINQ would wrap it in an InvalidOperationException).</summary>
    public static List<T> Sorted<T>(IEnumerable<T> items, Func<T, object?> key, bool descending = false)
    {
        var comparer = Comparer<object?>.Create((x, y) => Compare(x, y));
        try
        {
            return descending ? [.. items.OrderByDescending(key, comparer)] : [.. items.OrderBy(key, comparer)];
        }
        catch (InvalidOperationException e) when (e.InnerException is JinjaTemplateException inner)
        {
            throw inner;
        }
    }

    /// <summary>Python iteration: a list's items, a dict's keys, a string's characters; Undefined is empty.</summary>
    public static IReadOnlyList<object?> Iterate(object? v) => Plain(v) switch
    {
        JinjaList l => l.Items,
        JinjaDict d => [.. d.Keys],
        JinjaIterator i => i.Drain(),
        string s => [.. s.EnumerateRunes().Select(r => (object?)r.ToString())],
        Undefined => [],
        _ => throw new JinjaTemplateException($"'{TypeName(v)}' object is not iterable"),
    };

    /// <summary>`x in iterator` consumes items up to and including the first match, as in Python.</summary>
    static bool ContainsConsuming(JinjaIterator iterator, object? item)
    {
        while (iterator.TryNext(out var next))
            if (Equal(next, item)) return true;
        return false;
    }

    public static long Length(object? v) => Plain(v) switch
    {
        string s => s.EnumerateRunes().Count(),
        JinjaList l => l.Count,
        JinjaDict d => d.Count,
        Undefined => 0,
        _ => throw new JinjaTemplateException($"object of type '{TypeName(v)}' has no len()"),
    };

    public static bool Contains(object? container, object? item) => Plain(container) switch
    {
        string s when Plain(item) is string t => s.Contains(t, StringComparison.Ordinal),
        string => throw new JinjaTemplateException($"'in <string>' requires string as left operand, not {TypeName(item)}"),
        JinjaList l => l.Items.Any(x => Equal(x, item)),
        JinjaDict d => d.ContainsKey(item),
        JinjaIterator i => ContainsConsuming(i, item),
        Undefined => false,
        _ => throw new JinjaTemplateException($"argument of type '{TypeName(container)}' is not iterable"),
    };
}
