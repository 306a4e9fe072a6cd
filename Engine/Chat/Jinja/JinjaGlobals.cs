namespace Engine.Chat.Jinja;

/// <summary>The global functions of transformers' environment: jinja2's range (with the sandbox's 100,000-item cap),
/// dict, namespace, cycler and joiner, plus transformers' raise_exception and strftime_now.</summary>
internal static class JinjaGlobals
{
    /// <summary>jinja2.sandbox.MAX_RANGE.</summary>
    const long MaxRange = 100_000;

    public static Dictionary<string, object?> Create(JinjaInterpreter ip, Func<DateTime> clock) => new(StringComparer.Ordinal)
    {
        ["range"] = new JinjaCallable("range", Range),
        ["dict"] = new JinjaCallable("dict", Dict),
        ["namespace"] = new JinjaCallable("namespace", args =>
        {
            var ns = new Namespace();
            foreach (var (key, value) in Dict(args).Pairs) ns.Attributes[Py.Str(key)] = value;
            return ns;
        }),
        ["cycler"] = new JinjaCallable("cycler", args =>
            args.Positional.Count > 0 ? new Cycler(args.Positional) : throw new JinjaTemplateException("at least one item has to be provided")),
        ["joiner"] = new JinjaCallable("joiner", args =>
        {
            var separator = Py.Str(args.Bind("joiner", ["sep"], [", "])[0]);
            bool used = false;
            return new JinjaCallable("joiner", _ =>
            {
                if (used) return separator;
                used = true;
                return "";
            });
        }),
        ["raise_exception"] = new JinjaCallable("raise_exception", args =>
            throw new JinjaTemplateException(Py.Str(args.Bind("raise_exception", ["message"], [""])[0]), located: true)),
        ["strftime_now"] = new JinjaCallable("strftime_now", args =>
        {
            var format = args.Bind("strftime_now", ["format"], [])[0] as string
                         ?? throw new JinjaTemplateException("strftime_now() needs a format string");
            ip.CheckSize(format.Length * 16L);
            return Strftime.Format(clock(), format);
        }),
    };

    static object? Range(CallArguments args)
    {
        if (args.Keyword.Count > 0) throw new JinjaTemplateException("range() takes no keyword arguments");
        var n = args.Positional.Select(a => a is long or bool ? Convert.ToInt64(a) : throw new JinjaTemplateException(
            $"'{Py.TypeName(a)}' object cannot be interpreted as an integer")).ToArray();
        var (start, stop, step) = n.Length switch
        {
            1 => (0L, n[0], 1L),
            2 => (n[0], n[1], 1L),
            3 => (n[0], n[1], n[2]),
            _ => throw new JinjaTemplateException($"range expected 1 to 3 arguments, got {n.Length}"),
        };
        if (step == 0) throw new JinjaTemplateException("range() arg 3 must not be zero");
        var count = step > 0 ? (stop > start ? (stop - start - 1) / step + 1 : 0) : (start > stop ? (start - stop - 1) / -step + 1 : 0);
        if (count > MaxRange)
            throw new JinjaTemplateException($"Range too big. The sandbox blocks ranges larger than MAX_RANGE ({MaxRange}).");
        var items = new List<object?>((int)count);
        for (long i = 0, v = start; i < count; i++, v += step) items.Add(v);
        return new JinjaList(items);
    }

    /// <summary>dict(mapping_or_pairs, **kwargs).</summary>
    static JinjaDict Dict(CallArguments args)
    {
        var dict = new JinjaDict();
        if (args.Positional.Count > 1) throw new JinjaTemplateException($"dict expected at most 1 argument, got {args.Positional.Count}");
        if (args.Positional.Count == 1)
        {
            if (args.Positional[0] is JinjaDict source)
                foreach (var (key, value) in source.Pairs) dict.Set(key, value);
            else
                foreach (var pair in Py.Iterate(args.Positional[0]))
                {
                    var kv = Py.Iterate(pair);
                    if (kv.Count != 2) throw new JinjaTemplateException("dictionary update sequence element has the wrong length; 2 is required");
                    dict.Set(kv[0], kv[1]);
                }
        }
        foreach (var (key, value) in args.Keyword) dict.Set(key, value);
        return dict;
    }
}
