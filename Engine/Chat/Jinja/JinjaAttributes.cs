namespace Engine.Chat.Jinja;

/// <summary>
/// `x.name`, `x[key]` and slices, with jinja2's lookup order (attribute then item for `.`, item then attribute for
/// `[]`) and ImmutableSandboxedEnvironment's refusals: names starting with '_' and methods that mutate a list or dict
/// are errors. A missing key or attribute is Undefined; one of an Undefined is an error.
/// </summary>
internal static class JinjaAttributes
{
    static readonly HashSet<string> MutatingListMethods = ["append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear"];
    static readonly HashSet<string> MutatingDictMethods = ["clear", "pop", "popitem", "setdefault", "update"];

    public static JinjaTemplateException Unsafe(string name, object? target) =>
        new($"access to attribute '{name}' of '{Py.TypeName(target)}' object is unsafe.");

    public static object? Get(JinjaInterpreter ip, object? target, string name)
    {
        target = Py.Plain(target);
        if (target is Undefined u) throw u.Error();
        if (name.StartsWith('_')) throw Unsafe(name, target);
        switch (target)
        {
            case JinjaDict d:
                if (MutatingDictMethods.Contains(name)) throw Unsafe(name, target);
                return JinjaMethods.DictMethod(d, name) ?? (d.TryGet(name, out var value) ? value : Missing(target, name));
            case JinjaList l:
                if (MutatingListMethods.Contains(name)) throw Unsafe(name, target);
                if (l.FieldNames is { } fields && Array.IndexOf(fields, name) is var field and >= 0) return l.Items[field];
                return (object?)JinjaMethods.ListMethod(l, name) ?? Missing(target, name);
            case string s:
                return (object?)JinjaMethods.StringMethod(ip, s, name) ?? Missing(target, name);
            case Namespace ns:
                return ns.Attributes.TryGetValue(name, out var attribute) ? attribute : Missing(target, name);
            case LoopContext loop:
                return loop.GetAttribute(name);
            case Cycler cycler:
                return cycler.GetAttribute(name);
            default:
                return Missing(target, name);
        }
    }

    static Undefined Missing(object? target, string name) => new($"'{Py.TypeName(target)} object' has no attribute '{name}'");

    public static object? GetItem(JinjaInterpreter ip, object? target, object? key)
    {
        target = Py.Plain(target);
        key = Py.Plain(key);
        if (target is Undefined u) throw u.Error();
        switch (target)
        {
            case JinjaDict d:
                if (d.TryGet(key, out var value)) return value;
                break;
            case JinjaList l when key is long or bool:
                long index = key is bool b ? (b ? 1 : 0) : (long)key;
                if (index < 0) index += l.Count;
                return index >= 0 && index < l.Count ? l.Items[(int)index] : new Undefined($"'{Py.TypeName(target)} object' has no element {key}");
            case string s when key is long or bool:
                var chars = Runes(s);
                long i = key is bool c ? (c ? 1 : 0) : (long)key;
                if (i < 0) i += chars.Count;
                return i >= 0 && i < chars.Count ? chars[(int)i] : new Undefined($"'str object' has no element {key}");
        }
        return key is string name && !(target is JinjaDict) ? Get(ip, target, name) : new Undefined($"'{Py.TypeName(target)} object' has no attribute '{Py.Str(key)}'");
    }

    /// <summary>A string as Python sees it: one item per code point.</summary>
    public static List<string> Runes(string s) => [.. s.EnumerateRunes().Select(r => r.ToString())];

    /// <summary>Python's seq[start:stop:step] on a list, tuple or string.</summary>
    public static object? Slice(JinjaInterpreter ip, object? target, object? start, object? stop, object? step)
    {
        target = Py.Plain(target);
        if (target is Undefined u) throw u.Error();
        IReadOnlyList<object?> items = target switch
        {
            JinjaList l => l.Items,
            string s => Runes(s),
            _ => throw new JinjaTemplateException($"'{Py.TypeName(target)}' object is not subscriptable"),
        };
        long n = items.Count;
        long st = step is null ? 1 : SliceIndex(step);
        if (st == 0) throw new JinjaTemplateException("slice step cannot be zero");
        long lo, hi;
        if (st > 0)
        {
            lo = start is null ? 0 : Clamp(SliceIndex(start), n, 0, n);
            hi = stop is null ? n : Clamp(SliceIndex(stop), n, 0, n);
        }
        else
        {
            lo = start is null ? n - 1 : Clamp(SliceIndex(start), n, -1, n - 1);
            hi = stop is null ? -1 : Clamp(SliceIndex(stop), n, -1, n - 1);
        }
        var result = new List<object?>();
        for (long i = lo; st > 0 ? i < hi : i > hi; i += st) result.Add(items[(int)i]);
        ip.Step(1 + result.Count / 64);
        return target switch
        {
            string => string.Concat(result.Cast<string>()),
            JinjaList l => new JinjaList(result, l.IsTuple),
            _ => null,
        };
    }

    static long SliceIndex(object? v) => v switch
    {
        long n => n,
        bool b => b ? 1 : 0,
        _ => throw new JinjaTemplateException("slice indices must be integers or None"),
    };

    static long Clamp(long index, long length, long min, long max)
    {
        if (index < 0) index += length;
        return Math.Clamp(index, min, max);
    }
}
