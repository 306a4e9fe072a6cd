using System.Globalization;
using System.Numerics;
using System.Text;

namespace Engine.Chat.Jinja;

/// <summary>Python's binary arithmetic on template values, and printf-style string formatting (`'%s' % x`).</summary>
internal static class JinjaOperators
{
    public static object? Binary(JinjaInterpreter ip, string op, object? a, object? b)
    {
        if (a is Undefined u) throw u.Error();
        if (b is Undefined v) throw v.Error();
        if (Py.IsNumber(a) && Py.IsNumber(b)) return Arithmetic(op, a, b);
        if (a is Markup || b is Markup) return MarkupBinary(ip, op, a, b);
        switch (op)
        {
            case "+" when a is string s && b is string t:
                ip.CheckSize((long)s.Length + t.Length);
                return s + t;
            case "+" when a is JinjaList l && b is JinjaList m && l.IsTuple == m.IsTuple:
                ip.CheckSize((long)l.Count + m.Count);
                return new JinjaList([.. l.Items, .. m.Items], l.IsTuple);
            case "*" when (a is string || a is JinjaList) && b is long or bool:
                return Repeat(ip, a, ToInt(b));
            case "*" when (b is string || b is JinjaList) && a is long or bool:
                return Repeat(ip, b, ToInt(a));
            case "%" when a is string format:
                return Format(ip, format, b);
        }
        if (op == "+" && a is string)
            throw new JinjaTemplateException($"can only concatenate str (not \"{Py.TypeName(b)}\") to str");
        throw new JinjaTemplateException($"unsupported operand type(s) for {op}: '{Py.TypeName(a)}' and '{Py.TypeName(b)}'");
    }

    /// <summary>markupsafe: a string added to or formatted into Markup is escaped first; the result is Markup.</summary>
    static object? MarkupBinary(JinjaInterpreter ip, string op, object? a, object? b)
    {
        if (op == "+" && a is string or Markup && b is string or Markup)
        {
            var text = (string)Binary(ip, "+", Markup.Escape(a).Text, Markup.Escape(b).Text)!;
            return new Markup(text);
        }
        if (op == "%" && a is Markup format)
        {
            static object? EscapeArgument(object? x) => Py.IsNumber(x) ? x : Markup.Escape(x).Text;
            var values = b is JinjaList { IsTuple: true } t ? new JinjaList([.. t.Items.Select(EscapeArgument)], isTuple: true)
                : b is JinjaDict d ? EscapeValues(d, EscapeArgument) : EscapeArgument(b);
            return new Markup(Format(ip, format.Text, values));
        }
        if (op == "*" && (a is Markup || b is Markup)) return new Markup((string)Binary(ip, op, Py.Plain(a), Py.Plain(b))!);
        throw new JinjaTemplateException($"unsupported operand type(s) for {op}: '{Py.TypeName(a)}' and '{Py.TypeName(b)}'");
    }

    static JinjaDict EscapeValues(JinjaDict d, Func<object?, object?> escape)
    {
        var escaped = new JinjaDict();
        foreach (var (key, value) in d.Pairs) escaped.Set(key, escape(value));
        return escaped;
    }

    static long ToInt(object? v) => v is bool b ? (b ? 1 : 0) : (long)v!;

    static object Repeat(JinjaInterpreter ip, object? sequence, long times)
    {
        if (times < 0) times = 0;
        if (sequence is string s)
        {
            if (s.Length == 0) return "";
            ip.CheckSize(s.Length * Math.Min(times, int.MaxValue));
            return new StringBuilder(s.Length * (int)times).Insert(0, s, (int)times).ToString();
        }
        var l = (JinjaList)sequence!;
        if (l.Count == 0) return new JinjaList([], l.IsTuple);
        ip.CheckSize(l.Count * Math.Min(times, int.MaxValue));
        var items = new List<object?>();
        for (long i = 0; i < times; i++) items.AddRange(l.Items);
        return new JinjaList(items, l.IsTuple);
    }

    static object Arithmetic(string op, object? a, object? b)
    {
        bool floats = a is double || b is double;
        if (!floats && (a is BigInteger || b is BigInteger)) return BigArithmetic(op, Py.ToBig(a), Py.ToBig(b));
        if (!floats)
        {
            try { return LongArithmetic(op, ToInt(a), ToInt(b)); }
            catch (OverflowException) { return BigArithmetic(op, ToInt(a), ToInt(b)); }
        }
        double dx = Py.ToDouble(a), dy = Py.ToDouble(b);
        switch (op)
        {
            case "+": return dx + dy;
            case "-": return dx - dy;
            case "*": return dx * dy;
            case "/": return dy == 0 ? throw DivisionByZero() : dx / dy;
            case "//": return dy == 0 ? throw DivisionByZero() : Math.Floor(dx / dy);
            case "%":
                if (dy == 0) throw new JinjaTemplateException("float modulo");
                double m = dx % dy;
                return m != 0 && (m < 0) != (dy < 0) ? m + dy : m;
            case "**": return Math.Pow(dx, dy);
        }
        throw new JinjaTemplateException($"unknown operator {op}");
    }

    /// <summary>Python ints grow without bound; here they grow up to <see cref="MaxIntegerBits"/> bits (about the 4,300
    /// digits Python will print), so a huge power fails quickly instead of eating memory.</summary>
    const int MaxIntegerBits = 14_300;

    static object BigArithmetic(string op, BigInteger x, BigInteger y)
    {
        BigInteger result;
        switch (op)
        {
            case "+": result = x + y; break;
            case "-": result = x - y; break;
            case "*":
                if (x.GetBitLength() + y.GetBitLength() > MaxIntegerBits + 1) throw TooLarge();
                result = x * y;
                break;
            case "/": return y.IsZero ? throw DivisionByZero() : (double)x / (double)y;
            case "//" or "%":
                if (y.IsZero) throw op == "%" ? new JinjaTemplateException("integer modulo by zero") : DivisionByZero();
                var q = BigInteger.DivRem(x, y, out var r);
                if (!r.IsZero && (r.Sign < 0) != (y.Sign < 0)) { q -= 1; r += y; }
                result = op == "//" ? q : r;
                break;
            case "**":
                if (y.Sign < 0) return Math.Pow((double)x, (double)y);
                if (x.IsZero || x.IsOne || x == BigInteger.MinusOne) return Py.Normalize(BigInteger.Pow(x, y.IsEven ? 2 : 1));
                if (y > MaxIntegerBits || x.GetBitLength() * (long)y > MaxIntegerBits + 64) throw TooLarge();
                result = BigInteger.Pow(x, (int)y);
                break;
            default: throw new JinjaTemplateException($"unknown operator {op}");
        }
        if (result.GetBitLength() > MaxIntegerBits) throw TooLarge();
        return Py.Normalize(result);
    }

    static JinjaTemplateException TooLarge() => new($"integer result larger than {MaxIntegerBits} bits");

    static object LongArithmetic(string op, long x, long y)
    {
        {
            switch (op)
            {
                case "+": return checked(x + y);
                case "-": return checked(x - y);
                case "*": return checked(x * y);
                case "/": return y == 0 ? throw DivisionByZero() : (double)x / y;
                case "//":
                    if (y == 0) throw DivisionByZero();
                    long q = x / y;
                    return (x % y != 0 && (x < 0) != (y < 0)) ? q - 1 : q;
                case "%":
                    if (y == 0) throw new JinjaTemplateException("integer modulo by zero");
                    long r = x % y;
                    return r != 0 && (r < 0) != (y < 0) ? r + y : r;
                case "**":
                    if (y < 0) return Math.Pow(x, y);
                    long result = 1;
                    for (long i = 0; i < y; i++)
                    {
                        result = checked(result * x);
                        if (result is 0 or 1) break;
                    }
                    return y > 0 && x == -1 ? (y % 2 == 0 ? 1L : -1L) : result;
            }
        }
        throw new JinjaTemplateException($"unknown operator {op}");
    }

    static JinjaTemplateException DivisionByZero() => new("division by zero");

    /// <summary>Python's `format % values`: %s %r %d %i %f %e %g %x %o %c %% with flags, width, precision and
    /// %(name)s keys.</summary>
    public static string Format(JinjaInterpreter ip, string format, object? values)
    {
        var positional = values is JinjaList { IsTuple: true } t ? t.Items : [values];
        var mapping = values as JinjaDict;
        int next = 0;
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            char c = format[i];
            if (c != '%') { sb.Append(c); continue; }
            if (++i >= format.Length) throw new JinjaTemplateException("incomplete format");
            object? arg = null;
            bool haveArg = false;
            if (format[i] == '(')
            {
                int close = format.IndexOf(')', i);
                if (close < 0 || mapping is null) throw new JinjaTemplateException("format requires a mapping");
                var key = format[(i + 1)..close];
                if (!mapping.TryGet(key, out arg)) throw new JinjaTemplateException($"KeyError: '{key}'");
                haveArg = true;
                i = close + 1;
            }
            int flagsStart = i;
            while (i < format.Length && format[i] is '-' or '+' or ' ' or '0' or '#') i++;
            var flags = format[flagsStart..i];
            int? width = ReadNumber(format, ref i, positional, ref next);
            int? precision = null;
            if (i < format.Length && format[i] == '.') { i++; precision = ReadNumber(format, ref i, positional, ref next) ?? 0; }
            if (i >= format.Length) throw new JinjaTemplateException("incomplete format");
            char conversion = format[i];
            if (conversion == '%') { sb.Append('%'); continue; }
            if (!haveArg)
            {
                if (next >= positional.Count) throw new JinjaTemplateException("not enough arguments for format string");
                arg = positional[next++];
            }
            var text = Convert(conversion, arg, flags, precision);
            if (width is int w && text.Length < w)
                text = flags.Contains('-') ? text.PadRight(w)
                     : flags.Contains('0') && conversion is not ('s' or 'r' or 'c') ? ZeroPad(text, w)
                     : text.PadLeft(w);
            ip.CheckSize((long)sb.Length + text.Length);
            sb.Append(text);
        }
        if (mapping is null && next < positional.Count) throw new JinjaTemplateException("not all arguments converted during string formatting");
        return sb.ToString();
    }

    static int? ReadNumber(string format, ref int i, IReadOnlyList<object?> positional, ref int next)
    {
        if (i < format.Length && format[i] == '*')
        {
            i++;
            return next < positional.Count && positional[next++] is long n ? (int)Math.Clamp(n, 0, 10_000) : throw new JinjaTemplateException("* wants int");
        }
        int start = i;
        while (i < format.Length && char.IsAsciiDigit(format[i])) i++;
        return i > start ? Math.Min(int.Parse(format.AsSpan(start, i - start), CultureInfo.InvariantCulture), 10_000) : null;
    }

    static string ZeroPad(string text, int width)
    {
        int signLength = text.Length > 0 && text[0] is '-' or '+' or ' ' ? 1 : 0;
        return text[..signLength] + new string('0', width - text.Length) + text[signLength..];
    }

    static string Convert(char conversion, object? arg, string flags, int? precision)
    {
        string Sign(double x, string body) => x < 0 || double.IsNegative(x) ? body : flags.Contains('+') ? "+" + body : flags.Contains(' ') ? " " + body : body;
        switch (conversion)
        {
            case 's':
                var s = Py.Str(arg);
                return precision is int p && p < s.Length ? s[..p] : s;
            case 'r':
                var r = Py.Repr(arg);
                return precision is int q && q < r.Length ? r[..q] : r;
            case 'd' or 'i' or 'u':
                var n = arg is double d0 ? (long)Math.Truncate(d0) : NumberArg(arg, conversion) is long l ? l : 0;
                return Sign(n, n.ToString(CultureInfo.InvariantCulture));
            case 'f' or 'F':
                var f = Py.ToDouble(NumberArg(arg, conversion));
                return Sign(f, f.ToString("F" + (precision ?? 6), CultureInfo.InvariantCulture));
            case 'e' or 'E':
                var e = Py.ToDouble(NumberArg(arg, conversion));
                var et = e.ToString((conversion == 'e' ? "e" : "E") + (precision ?? 6), CultureInfo.InvariantCulture);
                // .NET writes three exponent digits (1.5e+003), Python at least two.
                int at = et.IndexOfAny(['e', 'E']);
                var exponent = int.Parse(et[(at + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
                return Sign(e, et[..(at + 1)] + (exponent < 0 ? "-" : "+") + Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture));
            case 'g' or 'G':
                var g = Py.ToDouble(NumberArg(arg, conversion));
                return Sign(g, g.ToString((conversion == 'g' ? "g" : "G") + Math.Max(1, precision ?? 6), CultureInfo.InvariantCulture));
            case 'x' or 'X' or 'o':
                var x = NumberArg(arg, conversion) is long xl ? xl : 0;
                var body = conversion == 'o' ? System.Convert.ToString(Math.Abs(x), 8) : Math.Abs(x).ToString(conversion == 'x' ? "x" : "X", CultureInfo.InvariantCulture);
                if (flags.Contains('#')) body = (conversion == 'o' ? "0o" : conversion == 'x' ? "0x" : "0X") + body;
                return x < 0 ? "-" + body : body;
            case 'c':
                return arg is string cs && cs.Length > 0 ? cs : arg is long cp and >= 0 and <= 0x10FFFF ? char.ConvertFromUtf32((int)cp) : throw new JinjaTemplateException("%c requires int or char");
            default:
                throw new JinjaTemplateException($"unsupported format character '{conversion}'");
        }
    }

    static object NumberArg(object? arg, char conversion) => arg switch
    {
        long or double => arg,
        BigInteger big => (double)big,
        bool b => b ? 1L : 0L,
        _ => throw new JinjaTemplateException($"%{conversion} format: a real number is required, not {Py.TypeName(arg)}"),
    };
}
