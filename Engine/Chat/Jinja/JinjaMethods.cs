using System.Globalization;
using System.Text;

namespace Engine.Chat.Jinja;

/// <summary>The Python methods templates call on str, dict and list values (`s.strip()`, `d.items()`, ...), each as a
/// bound <see cref="JinjaCallable"/>; null when the type has no method of that name. Only non-mutating methods exist.</summary>
internal static class JinjaMethods
{
    static JinjaCallable Method(string name, Func<CallArguments, object?> body) => new(name, body);

    static object?[] Bind(CallArguments args, string method, string[] names, params object?[] defaults) =>
        args.Bind(method, names, defaults);

    public static JinjaCallable? DictMethod(JinjaDict d, string name) => name switch
    {
        "items" => Method("dict.items", _ => new JinjaList([.. d.Pairs.Select(p => (object?)JinjaList.Tuple(p.Key, p.Value))])),
        "keys" => Method("dict.keys", _ => new JinjaList([.. d.Keys])),
        "values" => Method("dict.values", _ => new JinjaList([.. d.Values])),
        "get" => Method("dict.get", args =>
        {
            var a = Bind(args, "get", ["key", "default"], Undefined.Anonymous, null);
            return d.TryGet(a[0], out var value) ? value : a[1];
        }),
        "copy" => Method("dict.copy", _ =>
        {
            var copy = new JinjaDict();
            foreach (var (key, value) in d.Pairs) copy.Set(key, value);
            return copy;
        }),
        _ => null,
    };

    public static JinjaCallable? ListMethod(JinjaList l, string name) => name switch
    {
        "index" => Method("list.index", args =>
        {
            var a = Bind(args, "index", ["value"]);
            int i = l.Items.FindIndex(x => Py.Equal(x, a[0]));
            return i >= 0 ? (long)i : throw new JinjaTemplateException($"{Py.Repr(a[0])} is not in list");
        }),
        "count" => Method("list.count", args =>
        {
            var a = Bind(args, "count", ["value"]);
            return (long)l.Items.Count(x => Py.Equal(x, a[0]));
        }),
        "copy" => Method("list.copy", _ => new JinjaList([.. l.Items], l.IsTuple)),
        _ => null,
    };

    public static JinjaCallable? StringMethod(JinjaInterpreter ip, string s, string name) => name switch
    {
        "strip" => Method("str.strip", args => Strip(s, StripChars(args, "strip"), true, true)),
        "lstrip" => Method("str.lstrip", args => Strip(s, StripChars(args, "lstrip"), true, false)),
        "rstrip" => Method("str.rstrip", args => Strip(s, StripChars(args, "rstrip"), false, true)),
        "upper" => Method("str.upper", _ => s.ToUpperInvariant()),
        "lower" => Method("str.lower", _ => s.ToLowerInvariant()),
        "title" => Method("str.title", _ => Title(s)),
        "capitalize" => Method("str.capitalize", _ => Capitalize(s)),
        "swapcase" => Method("str.swapcase", _ => string.Concat(s.Select(c => char.IsUpper(c) ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c)))),
        "split" => Method("str.split", args =>
        {
            var a = Bind(args, "split", ["sep", "maxsplit"], null, -1L);
            return new JinjaList([.. Split(s, a[0] as string, a[1] is long m ? m : -1)]);
        }),
        "rsplit" => Method("str.rsplit", args =>
        {
            var a = Bind(args, "rsplit", ["sep", "maxsplit"], null, -1L);
            return new JinjaList([.. RSplit(s, a[0] as string, a[1] is long m ? m : -1)]);
        }),
        "splitlines" => Method("str.splitlines", args =>
        {
            var a = Bind(args, "splitlines", ["keepends"], false);
            return new JinjaList([.. SplitLines(s, Py.Truthy(a[0]))]);
        }),
        "startswith" => Method("str.startswith", args => Affix(s, args, "startswith", (t, p) => t.StartsWith(p, StringComparison.Ordinal))),
        "endswith" => Method("str.endswith", args => Affix(s, args, "endswith", (t, p) => t.EndsWith(p, StringComparison.Ordinal))),
        "replace" => Method("str.replace", args =>
        {
            var a = Bind(args, "replace", ["old", "new", "count"], Undefined.Anonymous, Undefined.Anonymous, -1L);
            return Replace(ip, s, Text(a[0], "replace"), Text(a[1], "replace"), a[2] is long n ? n : -1);
        }),
        "find" => Method("str.find", args => (long)s.IndexOf(Text(Bind(args, "find", ["sub"])[0], "find"), StringComparison.Ordinal)),
        "rfind" => Method("str.rfind", args => (long)s.LastIndexOf(Text(Bind(args, "rfind", ["sub"])[0], "rfind"), StringComparison.Ordinal)),
        "index" => Method("str.index", args =>
        {
            long i = s.IndexOf(Text(Bind(args, "index", ["sub"])[0], "index"), StringComparison.Ordinal);
            return i >= 0 ? i : throw new JinjaTemplateException("substring not found");
        }),
        "count" => Method("str.count", args => Count(s, Text(Bind(args, "count", ["sub"])[0], "count"))),
        "join" => Method("str.join", args =>
        {
            var parts = Py.Iterate(Bind(args, "join", ["iterable"])[0]);
            foreach (var p in parts)
                if (p is not string) throw new JinjaTemplateException($"sequence item: expected str instance, {Py.TypeName(p)} found");
            ip.CheckSize(parts.Sum(p => (long)((string)p!).Length) + (long)s.Length * parts.Count);
            return string.Join(s, parts.Cast<string>());
        }),
        "format" => Method("str.format", args => StrFormat(ip, s, args)),
        "center" => Method("str.center", args =>
        {
            var a = Bind(args, "center", ["width", "fillchar"], 0L, " ");
            int width = (int)Math.Min(a[0] is long w ? w : 0, ip.Limits.MaxOutputLength);
            if (width <= s.Length) return s;
            ip.CheckSize(width);
            int left = (width - s.Length) / 2 + ((width - s.Length) & width & 1);
            char fill = Text(a[1], "center")[0];
            return new string(fill, left) + s + new string(fill, width - s.Length - left);
        }),
        "ljust" => Method("str.ljust", args => s.PadRight(Width(ip, Bind(args, "ljust", ["width"])[0]))),
        "rjust" => Method("str.rjust", args => s.PadLeft(Width(ip, Bind(args, "rjust", ["width"])[0]))),
        "zfill" => Method("str.zfill", args =>
        {
            int width = Width(ip, Bind(args, "zfill", ["width"])[0]);
            if (width <= s.Length) return s;
            int sign = s.Length > 0 && s[0] is '+' or '-' ? 1 : 0;
            return s[..sign] + new string('0', width - s.Length) + s[sign..];
        }),
        "partition" => Method("str.partition", args =>
        {
            var sep = Text(Bind(args, "partition", ["sep"])[0], "partition");
            int i = s.IndexOf(sep, StringComparison.Ordinal);
            return i < 0 ? JinjaList.Tuple(s, "", "") : JinjaList.Tuple(s[..i], sep, s[(i + sep.Length)..]);
        }),
        "rpartition" => Method("str.rpartition", args =>
        {
            var sep = Text(Bind(args, "rpartition", ["sep"])[0], "rpartition");
            int i = s.LastIndexOf(sep, StringComparison.Ordinal);
            return i < 0 ? JinjaList.Tuple("", "", s) : JinjaList.Tuple(s[..i], sep, s[(i + sep.Length)..]);
        }),
        "isdigit" or "isnumeric" or "isdecimal" => Method("str." + name, _ => s.Length > 0 && s.All(char.IsDigit)),
        "isalpha" => Method("str.isalpha", _ => s.Length > 0 && s.All(char.IsLetter)),
        "isalnum" => Method("str.isalnum", _ => s.Length > 0 && s.All(char.IsLetterOrDigit)),
        "isspace" => Method("str.isspace", _ => s.Length > 0 && s.All(char.IsWhiteSpace)),
        "isupper" => Method("str.isupper", _ => s.Any(char.IsLetter) && !s.Any(char.IsLower)),
        "islower" => Method("str.islower", _ => s.Any(char.IsLetter) && !s.Any(char.IsUpper)),
        _ => null,
    };

    /// <summary>A padding width, charged and capped like any string the template builds.</summary>
    static int Width(JinjaInterpreter ip, object? width)
    {
        long w = width is long n ? Math.Max(n, 0) : 0;
        ip.CheckSize(w);
        return (int)w;
    }

    static string Text(object? v, string method) =>
        v as string ?? throw new JinjaTemplateException($"str.{method}() argument must be str, not {Py.TypeName(v)}");

    static string? StripChars(CallArguments args, string method)
    {
        var chars = Bind(args, method, ["chars"], [null])[0];
        return chars is null ? null : Text(chars, method);
    }

    /// <summary>Python's strip: whitespace, or any of <paramref name="chars"/>, from either end.</summary>
    public static string Strip(string s, string? chars, bool left, bool right)
    {
        Func<char, bool> strip = chars is null ? char.IsWhiteSpace : chars.Contains;
        int start = 0, end = s.Length;
        if (left) while (start < end && strip(s[start])) start++;
        if (right) while (end > start && strip(s[end - 1])) end--;
        return s[start..end];
    }

    public static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool previousCased = false;
        foreach (char c in s)
        {
            bool cased = char.IsUpper(c) || char.IsLower(c) || char.IsLetter(c);
            sb.Append(!cased ? c : previousCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            previousCased = cased;
        }
        return sb.ToString();
    }

    public static string Capitalize(string s) =>
        s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    static List<object?> Split(string s, string? sep, long maxSplit)
    {
        var parts = new List<object?>();
        if (sep is null)
        {
            int i = 0;
            while (true)
            {
                while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
                if (i >= s.Length) break;
                if (maxSplit >= 0 && parts.Count == maxSplit) { parts.Add(s[i..]); break; }
                int start = i;
                while (i < s.Length && !char.IsWhiteSpace(s[i])) i++;
                parts.Add(s[start..i]);
            }
            return parts;
        }
        if (sep.Length == 0) throw new JinjaTemplateException("empty separator");
        int from = 0;
        while (maxSplit < 0 || parts.Count < maxSplit)
        {
            int at = s.IndexOf(sep, from, StringComparison.Ordinal);
            if (at < 0) break;
            parts.Add(s[from..at]);
            from = at + sep.Length;
        }
        parts.Add(s[from..]);
        return parts;
    }

    static List<object?> RSplit(string s, string? sep, long maxSplit)
    {
        if (maxSplit < 0) return Split(s, sep, -1);
        if (sep is null)
        {
            var words = new List<object?>();
            int stop = s.Length;
            while (true)
            {
                while (stop > 0 && char.IsWhiteSpace(s[stop - 1])) stop--;
                if (stop == 0) break;
                if (words.Count == maxSplit) { words.Insert(0, s[..stop]); break; }
                int begin = stop;
                while (begin > 0 && !char.IsWhiteSpace(s[begin - 1])) begin--;
                words.Insert(0, s[begin..stop]);
                stop = begin;
            }
            return words;
        }
        if (sep.Length == 0) throw new JinjaTemplateException("empty separator");
        var parts = new List<object?>();
        int end = s.Length;
        while (parts.Count < maxSplit)
        {
            int at = end == 0 ? -1 : s.LastIndexOf(sep, end - 1, StringComparison.Ordinal);
            if (at < 0 || at + sep.Length > end) break;
            parts.Insert(0, s[(at + sep.Length)..end]);
            end = at;
        }
        parts.Insert(0, s[..end]);
        return parts;
    }

    static List<object?> SplitLines(string s, bool keepEnds)
    {
        var lines = new List<object?>();
        int start = 0;
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] is not ('\n' or '\r' or '\v' or '\f' or '\x1c' or '\x1d' or '\x1e' or '\x85' or '\u2028' or '\u2029')) continue;
            int end = i;
            if (s[i] == '\r' && i + 1 < s.Length && s[i + 1] == '\n') i++;
            lines.Add(keepEnds ? s[start..(i + 1)] : s[start..end]);
            start = i + 1;
        }
        if (start < s.Length) lines.Add(s[start..]);
        return lines;
    }

    static bool Affix(string s, CallArguments args, string method, Func<string, string, bool> test)
    {
        var a = Bind(args, method, ["prefix", "start", "end"], Undefined.Anonymous, null, null);
        int start = a[1] is long st ? (int)Math.Clamp(st < 0 ? st + s.Length : st, 0, s.Length) : 0;
        int end = a[2] is long en ? (int)Math.Clamp(en < 0 ? en + s.Length : en, start, s.Length) : s.Length;
        var text = s[start..end];
        return a[0] switch
        {
            string p => test(text, p),
            JinjaList { IsTuple: true } t => t.Items.Any(p => test(text, Text(p, method))),
            _ => throw new JinjaTemplateException($"{method} first arg must be str or a tuple of str, not {Py.TypeName(a[0])}"),
        };
    }

    public static string Replace(JinjaInterpreter ip, string s, string old, string replacement, long count)
    {
        var sb = new StringBuilder();
        int from = 0;
        long done = 0;
        if (old.Length == 0)
        {
            // Python inserts the replacement before every character and at the end.
            foreach (var rune in s.EnumerateRunes())
            {
                if (count >= 0 && done >= count) break;
                sb.Append(replacement).Append(rune.ToString());
                from += rune.Utf16SequenceLength;
                done++;
                ip.CheckSize(sb.Length);
            }
            if (count < 0 || done < count) sb.Append(replacement);
            sb.Append(s, from, s.Length - from);
            ip.CheckSize(sb.Length);
            return sb.ToString();
        }
        while (count < 0 || done < count)
        {
            int at = s.IndexOf(old, from, StringComparison.Ordinal);
            if (at < 0) break;
            sb.Append(s, from, at - from).Append(replacement);
            ip.CheckSize(sb.Length);
            from = at + old.Length;
            done++;
        }
        sb.Append(s, from, s.Length - from);
        ip.CheckSize(sb.Length);
        return sb.ToString();
    }

    static long Count(string s, string sub)
    {
        if (sub.Length == 0) return s.EnumerateRunes().Count() + 1;
        long n = 0;
        for (int at = s.IndexOf(sub, StringComparison.Ordinal); at >= 0; at = s.IndexOf(sub, at + sub.Length, StringComparison.Ordinal)) n++;
        return n;
    }

    /// <summary>Python's str.format: {}, {0}, {name}, {{ and }}, conversions !s !r, and format specs
    /// [[fill]align][sign][0][width][,][.precision][type].</summary>
    static string StrFormat(JinjaInterpreter ip, string format, CallArguments args)
    {
        var sb = new StringBuilder();
        int auto = 0;
        for (int i = 0; i < format.Length; i++)
        {
            char c = format[i];
            if (c == '{' && i + 1 < format.Length && format[i + 1] == '{') { sb.Append('{'); i++; continue; }
            if (c == '}' && i + 1 < format.Length && format[i + 1] == '}') { sb.Append('}'); i++; continue; }
            if (c == '}') throw new JinjaTemplateException("Single '}' encountered in format string");
            if (c != '{') { sb.Append(c); continue; }
            int close = format.IndexOf('}', i);
            if (close < 0) throw new JinjaTemplateException("Single '{' encountered in format string");
            var field = format[(i + 1)..close];
            i = close;
            string spec = "";
            int colon = field.IndexOf(':');
            if (colon >= 0) { spec = field[(colon + 1)..]; field = field[..colon]; }
            char conversion = '\0';
            int bang = field.IndexOf('!');
            if (bang >= 0) { conversion = field.Length > bang + 1 ? field[bang + 1] : 's'; field = field[..bang]; }
            object? value;
            if (field.Length == 0) value = auto < args.Positional.Count ? args.Positional[auto++] : throw new JinjaTemplateException("Replacement index out of range");
            else if (int.TryParse(field, NumberStyles.None, CultureInfo.InvariantCulture, out int index))
                value = index < args.Positional.Count ? args.Positional[index] : throw new JinjaTemplateException($"Replacement index {index} out of range");
            else
            {
                var found = args.Keyword.FirstOrDefault(k => k.Key == field);
                value = found.Key is not null ? found.Value : throw new JinjaTemplateException($"KeyError: '{field}'");
            }
            if (conversion == 'r') value = Py.Repr(value);
            else if (conversion == 's') value = Py.Str(value);
            var text = FormatSpec(value, spec);
            ip.CheckSize((long)sb.Length + text.Length);
            sb.Append(text);
        }
        return sb.ToString();
    }

    static string FormatSpec(object? value, string spec)
    {
        if (spec.Length == 0) return Py.Str(value);
        int i = 0;
        char fill = ' ', align = '\0';
        if (spec.Length >= 2 && spec[1] is '<' or '>' or '^' or '=') { fill = spec[0]; align = spec[1]; i = 2; }
        else if (spec[0] is '<' or '>' or '^' or '=') { align = spec[0]; i = 1; }
        char sign = '-';
        if (i < spec.Length && spec[i] is '+' or '-' or ' ') sign = spec[i++];
        if (i < spec.Length && spec[i] == '0') { if (align == '\0') { fill = '0'; align = '='; } i++; }
        int width = 0;
        while (i < spec.Length && char.IsAsciiDigit(spec[i])) width = Math.Min(width * 10 + (spec[i++] - '0'), 10_000);
        bool grouping = i < spec.Length && spec[i] == ',';
        if (grouping) i++;
        int? precision = null;
        if (i < spec.Length && spec[i] == '.')
        {
            i++;
            int p = 0;
            while (i < spec.Length && char.IsAsciiDigit(spec[i])) p = Math.Min(p * 10 + (spec[i++] - '0'), 100);
            precision = p;
        }
        char type = i < spec.Length ? spec[i] : '\0';
        string body;
        bool numeric = value is long or double or bool && type != 's';
        var ic = CultureInfo.InvariantCulture;
        switch (type)
        {
            case 'f' or 'F' or '%':
                double d = Py.ToDouble(value) * (type == '%' ? 100 : 1);
                body = Math.Abs(d).ToString((grouping ? "N" : "F") + (precision ?? 6), ic) + (type == '%' ? "%" : "");
                break;
            case 'd':
                body = Math.Abs(value is long n ? n : throw new JinjaTemplateException("format code 'd' needs an int")).ToString(grouping ? "N0" : "D", ic);
                break;
            case 'x' or 'X':
                body = Math.Abs(value is long x ? x : 0).ToString(type == 'x' ? "x" : "X", ic);
                break;
            case 'e' or 'E':
                body = Math.Abs(Py.ToDouble(value)).ToString((type == 'e' ? "e" : "E") + (precision ?? 6), ic);
                break;
            default:
                body = numeric && value is not bool ? Py.Str(value is long l ? Math.Abs(l) : value is double dd ? Math.Abs(dd) : value) : Py.Str(value);
                if (grouping && value is long grouped) body = Math.Abs(grouped).ToString("N0", ic);
                if (!numeric && precision is int cut && cut < body.Length) body = body[..cut];
                break;
        }
        if (numeric)
        {
            bool negative = value is long ln ? ln < 0 : value is double dn && (dn < 0 || double.IsNegative(dn));
            var signText = negative ? "-" : sign == '+' ? "+" : sign == ' ' ? " " : "";
            if (align == '=' && width > body.Length + signText.Length) return signText + new string(fill, width - body.Length - signText.Length) + body;
            body = signText + body;
        }
        if (width <= body.Length) return body;
        if (align == '\0') align = numeric ? '>' : '<';
        int pad = width - body.Length;
        return align switch
        {
            '<' => body + new string(fill, pad),
            '^' => new string(fill, pad / 2) + body + new string(fill, pad - pad / 2),
            _ => new string(fill, pad) + body,
        };
    }
}
