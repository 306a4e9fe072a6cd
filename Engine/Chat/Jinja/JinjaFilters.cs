using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Engine.Chat.Jinja;

/// <summary>jinja2's built-in filters with their Python signatures, and transformers' tojson (json.dumps).</summary>
internal static partial class JinjaFilters
{
    static readonly HashSet<string> Names =
    [
        "tojson", "trim", "length", "count", "default", "d", "join", "map", "select", "reject", "selectattr", "rejectattr",
        "items", "first", "last", "list", "string", "int", "float", "abs", "upper", "lower", "title", "capitalize",
        "replace", "safe", "escape", "e", "forceescape", "unique", "sort", "dictsort", "min", "max", "sum", "round",
        "indent", "wordcount", "batch", "reverse", "groupby", "attr", "format", "center", "pprint", "truncate", "striptags", "slice",
    ];

    public static bool Exists(string name) => Names.Contains(name);

    public static object? Apply(JinjaInterpreter ip, string name, object? v, CallArguments args)
    {
        object?[] Bind(string[] names, params object?[] defaults) => args.Bind(name, names, defaults);
        switch (name)
        {
            case "tojson": return ToJson(ip, v, Bind(["ensure_ascii", "indent", "separators", "sort_keys"], false, null, null, false));
            case "trim":
                var chars = Bind(["chars"], [null])[0];
                return JinjaMethods.Strip(Py.Str(v), chars as string, true, true);
            case "length" or "count": return Py.Length(v);
            case "default" or "d":
                var d = Bind(["default_value", "boolean"], "", false);
                return v is Undefined || (Py.Truthy(d[1]) && !Py.Truthy(v)) ? d[0] : v;
            case "join":
                var j = Bind(["d", "attribute"], "", null);
                var parts = Py.Iterate(v).Select(item => Py.Str(j[1] is null ? item : Attribute(ip, item, j[1], Undefined.Anonymous))).ToList();
                ip.CheckSize(parts.Sum(p => (long)p.Length) + (long)Py.Str(j[0]).Length * parts.Count);
                return string.Join(Py.Str(j[0]), parts);
            // jinja2's map and select family skip a falsy input ("if value:"), so none|map(...) is empty.
            case "map": return new JinjaIterator(Py.Truthy(v) ? Map(ip, v, args) : []);
            case "select" or "reject":
                return new JinjaIterator(Py.Truthy(v)
                    ? [.. Py.Iterate(v).Where(item => Select(ip, item, args.Positional, 0) == (name == "select"))] : []);
            case "selectattr" or "rejectattr":
                if (args.Positional.Count == 0) throw new JinjaTemplateException($"{name}() needs an attribute name");
                return new JinjaIterator(Py.Truthy(v) ? [.. Py.Iterate(v).Where(item =>
                    Select(ip, Attribute(ip, item, args.Positional[0], Undefined.Anonymous), args.Positional, 1) == (name == "selectattr"))] : []);
            case "items":
                return v switch
                {
                    Undefined => new JinjaIterator([], "dict_itemiterator"),
                    JinjaDict dict => new JinjaIterator([.. dict.Pairs.Select(p => (object?)JinjaList.Tuple(p.Key, p.Value))], "dict_itemiterator"),
                    _ => throw new JinjaTemplateException("Can only get item pairs from a mapping."),
                };
            case "first":
                if (v is JinjaIterator iterator) return iterator.TryNext(out var next) ? next : new Undefined("No first item, sequence was empty.");
                var all = Py.Iterate(v);
                return all.Count > 0 ? all[0] : new Undefined("No first item, sequence was empty.");
            case "last":
                if (v is JinjaIterator) throw new JinjaTemplateException($"'{Py.TypeName(v)}' object is not reversible");
                var seq = Py.Iterate(v);
                return seq.Count > 0 ? seq[^1] : new Undefined("No last item, sequence was empty.");
            case "list": return new JinjaList([.. Py.Iterate(v)]);
            case "string": return Py.Str(v);
            case "int": return ToInt(v, Bind(["default", "base"], 0L, 10L));
            case "float": return ToFloat(v, Bind(["default"], 0.0)[0]);
            case "abs":
                return v switch
                {
                    long n when n != long.MinValue => (object)Math.Abs(n),
                    long n => -(System.Numerics.BigInteger)n,
                    System.Numerics.BigInteger big => Py.Normalize(System.Numerics.BigInteger.Abs(big)),
                    double x => Math.Abs(x),
                    bool b => b ? 1L : 0L,
                    _ => throw new JinjaTemplateException($"bad operand type for abs(): '{Py.TypeName(v)}'"),
                };
            case "upper": return Py.Str(v).ToUpperInvariant();
            case "lower": return Py.Str(v).ToLowerInvariant();
            case "title": return Title(Py.Str(v));
            case "capitalize": return JinjaMethods.Capitalize(Py.Str(v));
            case "replace":
                var r = Bind(["old", "new", "count"], Undefined.Anonymous, Undefined.Anonymous, null);
                return JinjaMethods.Replace(ip, Py.Str(v), Py.Str(r[0]), Py.Str(r[1]), r[2] is long c ? c : -1);
            case "safe": return v as Markup ?? new Markup(Py.Str(v));
            case "escape" or "e": return Markup.Escape(v);
            case "forceescape": return new Markup(Markup.Html(Py.Str(v)));
            case "unique": return Unique(ip, v, Bind(["case_sensitive", "attribute"], false, null));
            case "sort": return Sort(ip, v, Bind(["reverse", "case_sensitive", "attribute"], false, false, null));
            case "dictsort": return DictSort(v, Bind(["case_sensitive", "by", "reverse"], false, "key", false));
            case "groupby": return GroupBy(ip, v, Bind(["attribute", "default", "case_sensitive"], Undefined.Anonymous, null, false));
            case "min" or "max": return MinMax(ip, v, name == "max", Bind(["case_sensitive", "attribute"], false, null));
            case "sum":
                var s = Bind(["attribute", "start"], null, 0L);
                object? total = s[1];
                foreach (var item in Py.Iterate(v))
                    total = JinjaOperators.Binary(ip, "+", total, s[0] is null ? item : Attribute(ip, item, s[0], Undefined.Anonymous));
                return total;
            case "round": return Round(v, Bind(["precision", "method"], 0L, "common"));
            case "indent": return Indent(ip, Py.Str(v), Bind(["width", "first", "blank"], 4L, false, false));
            case "wordcount": return (long)Bounded(() => WordRegex().Count(Py.Str(v)));
            case "batch": return Batch(ip, v, Bind(["linecount", "fill_with"], Undefined.Anonymous, null));
            case "slice": return SliceColumns(ip, v, Bind(["slices", "fill_with"], Undefined.Anonymous, null));
            case "reverse":
                return v is string text ? string.Concat(JinjaAttributes.Runes(text).AsEnumerable().Reverse())
                    : new JinjaIterator([.. Py.Iterate(v).Reverse()], v is JinjaList ? "list_reverseiterator" : "reversed");
            case "attr": return JinjaAttributes.Get(ip, v, Py.Str(Bind(["name"], Undefined.Anonymous)[0]));
            case "format":
                if (args.Keyword.Count > 0 && args.Positional.Count > 0)
                    throw new JinjaTemplateException("can't handle positional and keyword arguments at the same time");
                object? values;
                if (args.Keyword.Count > 0)
                {
                    var mapping = new JinjaDict();
                    foreach (var (key, value) in args.Keyword) mapping.Set(key, value);
                    values = mapping;
                }
                else values = new JinjaList(args.Positional, isTuple: true);
                return JinjaOperators.Format(ip, Py.Str(v), values);
            case "center":
                var width = (int)Math.Min(Bind(["width"], 80L)[0] is long w ? w : 80, ip.Limits.MaxOutputLength);
                var str = Py.Str(v);
                if (width <= str.Length) return str;
                ip.CheckSize(width);
                int left = (width - str.Length) / 2 + ((width - str.Length) & width & 1);
                return new string(' ', left) + str + new string(' ', width - str.Length - left);
            case "pprint": return Py.Repr(v);
            case "truncate": return Truncate(Py.Str(v), Bind(["length", "killwords", "end", "leeway"], 255L, false, "...", 5L));
            case "striptags":
                return string.Join(' ', Bounded(() => TagRegex().Replace(Py.Str(v), "")).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
            default: throw new JinjaTemplateException($"no filter named '{name}'");
        }
    }

    /// <summary>transformers' tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).</summary>
    static string ToJson(JinjaInterpreter ip, object? v, object?[] a)
    {
        var indent = a[1] switch
        {
            null => null,
            long n => new string(' ', (int)Math.Clamp(n, 0, 64)),
            string s => s,
            _ => throw new JinjaTemplateException("tojson: indent must be an integer or a string"),
        };
        string item = indent is null ? ", " : ",", key = ": ";
        if (a[2] is JinjaList { Count: 2 } separators)
        {
            item = Py.Str(separators.Items[0]);
            key = Py.Str(separators.Items[1]);
        }
        var json = PyJson.Dumps(v, new PyJson.Options(Py.Truthy(a[0]), indent, item, key, Py.Truthy(a[3])), ip.Limits.MaxOutputLength);
        ip.CheckSize(json.Length);
        return json;
    }

    /// <summary>Looks up a dotted attribute path ("function.name", "0.content") as jinja2's make_attrgetter does.</summary>
    static object? Attribute(JinjaInterpreter ip, object? item, object? path, object? fallback)
    {
        var parts = path is long n ? [n.ToString(CultureInfo.InvariantCulture)] : Py.Str(path).Split('.');
        foreach (var part in parts)
        {
            object? key = long.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var index) ? index : part;
            item = JinjaAttributes.GetItem(ip, item, key);
            if (item is Undefined && fallback is not Undefined) return fallback;
        }
        return item;
    }

    static List<object?> Map(JinjaInterpreter ip, object? v, CallArguments args)
    {
        var items = Py.Iterate(v);
        var attribute = args.Keyword.FirstOrDefault(k => k.Key == "attribute");
        if (attribute.Key is not null && args.Positional.Count == 0)
        {
            var fallback = args.Keyword.FirstOrDefault(k => k.Key == "default");
            return [.. items.Select(item => Attribute(ip, item, attribute.Value, fallback.Key is null ? Undefined.Anonymous : fallback.Value))];
        }
        if (args.Positional.Count == 0) throw new JinjaTemplateException("map requires a filter argument");
        var filter = Py.Str(args.Positional[0]);
        var rest = new CallArguments([.. args.Positional.Skip(1)], args.Keyword);
        return [.. items.Select(item => Apply(ip, filter, item, rest))];
    }

    /// <summary>select/reject: the item passes the named test (with the arguments after the name), or is truthy when
    /// no test is named.</summary>
    static bool Select(JinjaInterpreter ip, object? item, List<object?> positional, int testIndex)
    {
        if (positional.Count <= testIndex) return Py.Truthy(item);
        var test = Py.Str(positional[testIndex]);
        return JinjaTests.Apply(ip, test, item, new CallArguments([.. positional.Skip(testIndex + 1)], []));
    }

    static object? ToInt(object? v, object?[] a)
    {
        switch (v)
        {
            case long or System.Numerics.BigInteger: return v;
            case bool b: return b ? 1L : 0L;
            case double d when !double.IsNaN(d) && !double.IsInfinity(d): return (long)Math.Truncate(d);
            case string s:
                var text = s.Trim().Replace("_", "");
                int numberBase = a[1] is long nb ? (int)nb : 10;
                try
                {
                    if (numberBase == 10 && long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n)) return n;
                    if (numberBase != 10 && text.Length > 0) return Convert.ToInt64(StripBasePrefix(text, numberBase), numberBase);
                }
                catch (Exception e) when (e is FormatException or ArgumentException or OverflowException) { return a[0]; }
                return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var f) && !double.IsInfinity(f) && !double.IsNaN(f)
                    ? (long)Math.Truncate(f) : a[0];
            default: return a[0];
        }
    }

    static string StripBasePrefix(string text, int numberBase) =>
        text.Length > 2 && text[0] == '0' && char.ToLowerInvariant(text[1]) == (numberBase switch { 16 => 'x', 8 => 'o', 2 => 'b', _ => '\0' })
            ? text[2..] : text;

    static object? ToFloat(object? v, object? fallback) => v switch
    {
        double => v,
        long n => (double)n,
        bool b => b ? 1.0 : 0.0,
        string s when double.TryParse(s.Trim().Replace("_", ""), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
        string s when s.Trim().ToLowerInvariant() is "inf" or "+inf" or "infinity" => double.PositiveInfinity,
        string s when s.Trim().ToLowerInvariant() is "-inf" or "-infinity" => double.NegativeInfinity,
        string s when s.Trim().ToLowerInvariant() is "nan" => double.NaN,
        _ => fallback,
    };

    /// <summary>jinja2's title filter: a word starts after '-', whitespace or an opening bracket.</summary>
    static string Title(string s) =>
        string.Concat(Bounded(() => WordBeginningRegex().Split(s)).Where(item => item.Length > 0)
            .Select(item => char.ToUpperInvariant(item[0]) + item[1..].ToLowerInvariant()));

    /// <summary>Runs a regular expression with a time limit (the patterns carry one), as a template error.</summary>
    static T Bounded<T>(Func<T> match)
    {
        try { return match(); }
        catch (RegexMatchTimeoutException) { throw new JinjaTemplateException("a filter's pattern match took too long"); }
    }

    static object? SortKey(JinjaInterpreter ip, object? item, object? attribute, bool caseSensitive)
    {
        var key = attribute is null ? item : Attribute(ip, item, attribute, Undefined.Anonymous);
        return !caseSensitive && key is string s ? s.ToLowerInvariant() : key;
    }

    static JinjaIterator Unique(JinjaInterpreter ip, object? v, object?[] a)
    {
        var seen = new List<object?>();
        var result = new List<object?>();
        foreach (var item in Py.Iterate(v))
        {
            var key = SortKey(ip, item, a[1], Py.Truthy(a[0]));
            if (seen.Any(s => Py.Equal(s, key))) continue;
            seen.Add(key);
            result.Add(item);
        }
        return new JinjaIterator(result);
    }

    static JinjaList Sort(JinjaInterpreter ip, object? v, object?[] a)
    {
        var items = Py.Iterate(v).Select(item => (Key: SortKey(ip, item, a[2], Py.Truthy(a[1])), Item: item)).ToList();
        ip.Step(items.Count);
        // A stable sort, as Python's; reverse keeps equal items in their original order too.
        var sorted = Py.Sorted(items, x => x.Key, descending: Py.Truthy(a[0]));
        return new JinjaList([.. sorted.Select(x => x.Item)]);
    }

    /// <summary>jinja2's groupby: items sorted (stably) by the attribute, then runs of equal keys as named tuples
    /// (grouper, list); without case_sensitive, strings group case-insensitively and the grouper is the first item's.</summary>
    static JinjaList GroupBy(JinjaInterpreter ip, object? v, object?[] a)
    {
        bool caseSensitive = Py.Truthy(a[2]);
        var fallback = a[1] is null ? Undefined.Anonymous : a[1];
        var keyed = Py.Iterate(v).Select(item =>
        {
            var value = Attribute(ip, item, a[0], fallback);
            return (Key: !caseSensitive && value is string s ? s.ToLowerInvariant() : value, Value: value, Item: item);
        }).ToList();
        ip.Step(keyed.Count);
        var sorted = Py.Sorted(keyed, x => x.Key);
        var groups = new List<object?>();
        for (int i = 0; i < sorted.Count;)
        {
            int end = i + 1;
            while (end < sorted.Count && Py.Equal(sorted[end].Key, sorted[i].Key)) end++;
            var members = new JinjaList([.. sorted.Skip(i).Take(end - i).Select(x => x.Item)]);
            groups.Add(new JinjaList([caseSensitive ? sorted[i].Key : sorted[i].Value, members], isTuple: true, ["grouper", "list"]));
            i = end;
        }
        return new JinjaList(groups);
    }

    static JinjaList DictSort(object? v, object?[] a)
    {
        if (v is not JinjaDict d) throw new JinjaTemplateException("dictsort needs a mapping");
        bool byValue = Py.Str(a[1]) switch
        {
            "key" => false,
            "value" => true,
            _ => throw new JinjaTemplateException("You can only sort by either \"key\" or \"value\""),
        };
        object? Key(KeyValuePair<object?, object?> p)
        {
            var k = byValue ? p.Value : p.Key;
            return !Py.Truthy(a[0]) && k is string s ? s.ToLowerInvariant() : k;
        }
        var pairs = Py.Sorted(d.Pairs, Key, descending: Py.Truthy(a[2]));
        return new JinjaList([.. pairs.Select(p => (object?)JinjaList.Tuple(p.Key, p.Value))]);
    }

    static object? MinMax(JinjaInterpreter ip, object? v, bool max, object?[] a)
    {
        var items = Py.Iterate(v);
        if (items.Count == 0) return new Undefined($"No aggregated item, sequence was empty.");
        object? best = items[0];
        var bestKey = SortKey(ip, best, a[1], Py.Truthy(a[0]));
        foreach (var item in items.Skip(1))
        {
            var key = SortKey(ip, item, a[1], Py.Truthy(a[0]));
            int c = Py.Compare(key, bestKey);
            if (max ? c > 0 : c < 0) { best = item; bestKey = key; }
        }
        return best;
    }

    static object? Round(object? v, object?[] a)
    {
        int precision = a[0] is long p ? (int)Math.Clamp(p, -15, 15) : 0;
        var method = Py.Str(a[1]);
        if (v is long && method == "common" && precision >= 0) return v;
        double x = Py.ToDouble(v), scale = Math.Pow(10, precision);
        return method switch
        {
            "common" => precision >= 0 ? RoundHalfEvenExact(x, precision) : Math.Round(x / Math.Pow(10, -precision), MidpointRounding.ToEven) * Math.Pow(10, -precision),
            "ceil" => Math.Ceiling(x * scale) / scale,
            "floor" => Math.Floor(x * scale) / scale,
            _ => throw new JinjaTemplateException("method must be common, ceil or floor"),
        };
    }

    /// <summary>Python's round(x, n): rounds the double's exact binary value, so 2.675 (really 2.67499999...) gives
    /// 2.67, and only true ties go to the even digit. Math.Round scales by 10^n first and would give 2.68.</summary>
    static double RoundHalfEvenExact(double x, int precision)
    {
        if (double.IsNaN(x) || double.IsInfinity(x)) return x;
        // .NET prints a double's exact decimal expansion; 60 places hold every digit that matters here.
        var exact = Math.Abs(x).ToString("F60", CultureInfo.InvariantCulture);
        int dot = exact.IndexOf('.');
        var kept = exact[..(dot + 1 + precision)].TrimEnd('.');
        var rest = exact[(dot + 1 + precision)..];
        int comparison = rest[0] > '5' || (rest[0] == '5' && rest[1..].Any(c => c != '0')) ? 1 : rest[0] == '5' ? 0 : -1;
        var result = double.Parse(kept, CultureInfo.InvariantCulture);
        int lastDigit = kept[^1] - '0';
        if (comparison > 0 || (comparison == 0 && lastDigit % 2 == 1)) result += Math.Pow(10, -precision);
        result = double.Parse(result.ToString("F" + precision, CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
        return x < 0 ? -result : result;
    }

    /// <summary>jinja2 3.1's indent: lines after the first get the indent; blank lines only with blank=True.</summary>
    static string Indent(JinjaInterpreter ip, string s, object?[] a)
    {
        var indentation = a[0] is string text ? text : new string(' ', (int)Math.Clamp(a[0] is long n ? n : 4, 0, 1000));
        var lines = (s + "\n").Split('\n').SkipLast(1).ToList();
        ip.CheckSize(s.Length + (long)indentation.Length * (lines.Count + 1));
        string result;
        if (Py.Truthy(a[2])) result = string.Join("\n" + indentation, lines);
        else
        {
            result = lines[0];
            if (lines.Count > 1) result += "\n" + string.Join("\n", lines.Skip(1).Select(line => line.Length > 0 ? indentation + line : line));
        }
        return Py.Truthy(a[1]) ? indentation + result : result;
    }

    static JinjaIterator Batch(JinjaInterpreter ip, object? v, object?[] a)
    {
        long size = a[0] is long n && n > 0 ? n : throw new JinjaTemplateException("batch needs a positive line count");
        ip.CheckSize(size);
        var batches = new List<object?>();
        List<object?>? current = null;
        foreach (var item in Py.Iterate(v))
        {
            current ??= [];
            current.Add(item);
            if (current.Count == size) { batches.Add(new JinjaList(current)); current = null; }
        }
        if (current is not null)
        {
            if (a[1] is not null) while (current.Count < size) current.Add(a[1]);
            batches.Add(new JinjaList(current));
        }
        return new JinjaIterator(batches);
    }

    static JinjaIterator SliceColumns(JinjaInterpreter ip, object? v, object?[] a)
    {
        var items = Py.Iterate(v);
        long slices = a[0] is long n && n > 0 ? n : throw new JinjaTemplateException("slice needs a positive count");
        ip.CheckSize(slices);
        long perSlice = items.Count / slices, extra = items.Count % slices;
        var result = new List<object?>();
        int offset = 0;
        for (long i = 0; i < slices; i++)
        {
            int count = (int)(perSlice + (i < extra ? 1 : 0));
            var column = items.Skip(offset).Take(count).ToList();
            offset += count;
            if (a[1] is not null && i >= extra && extra > 0) column.Add(a[1]);
            result.Add(new JinjaList(column));
        }
        return new JinjaIterator(result);
    }

    static string Truncate(string s, object?[] a)
    {
        long length = a[0] is long n ? n : 255, leeway = a[3] is long l ? l : 5;
        var end = Py.Str(a[2]);
        if (s.Length <= length + leeway) return s;
        if (Py.Truthy(a[1])) return s[..(int)Math.Max(0, length - end.Length)] + end;
        var cut = s[..(int)Math.Max(0, length - end.Length)];
        int space = cut.LastIndexOf(' ');
        return (space >= 0 ? cut[..space] : cut) + end;
    }

    [GeneratedRegex(@"([-\s({\[<]+)", RegexOptions.None, matchTimeoutMilliseconds: 2000)]
    private static partial Regex WordBeginningRegex();

    [GeneratedRegex(@"\w+", RegexOptions.None, matchTimeoutMilliseconds: 2000)]
    private static partial Regex WordRegex();

    [GeneratedRegex(@"(<!--.*?-->|<[^>]*>)", RegexOptions.Singleline, matchTimeoutMilliseconds: 2000)]
    private static partial Regex TagRegex();
}
