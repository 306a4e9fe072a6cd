namespace Engine.Chat.Jinja;

/// <summary>The `loop` variable inside {% for %}: position, neighbours, cycle/changed, and for recursive loops a call
/// that renders the loop body again over a nested iterable.</summary>
internal sealed class LoopContext(IReadOnlyList<object?> items, int depth0, Func<object?, int, string>? recurse)
{
    object? _lastChanged = Undefined.Anonymous;

    public int Index0 { get; set; }

    public object? GetAttribute(string name) => name switch
    {
        "index" => (long)Index0 + 1,
        "index0" => (long)Index0,
        "revindex" => (long)(items.Count - Index0),
        "revindex0" => (long)(items.Count - Index0 - 1),
        "first" => Index0 == 0,
        "last" => Index0 == items.Count - 1,
        "length" => (long)items.Count,
        "depth" => (long)depth0 + 1,
        "depth0" => (long)depth0,
        "previtem" => Index0 > 0 ? items[Index0 - 1] : new Undefined("there is no previous item"),
        "nextitem" => Index0 + 1 < items.Count ? items[Index0 + 1] : new Undefined("there is no next item"),
        "cycle" => new JinjaCallable("loop.cycle", args =>
            args.Positional.Count == 0
                ? throw new JinjaTemplateException("no items for cycling given")
                : args.Positional[Index0 % args.Positional.Count]),
        "changed" => new JinjaCallable("loop.changed", args =>
        {
            var value = new JinjaList(args.Positional, isTuple: true);
            if (Py.Equal(value, _lastChanged)) return false;
            _lastChanged = value;
            return true;
        }),
        _ => new Undefined($"'LoopContext' object has no attribute '{name}'"),
    };

    /// <summary>loop(children) in a recursive loop.</summary>
    public object? Call(CallArguments args)
    {
        if (recurse is null) throw new JinjaTemplateException("the loop is not recursive: declare it {% for ... recursive %}");
        if (args.Positional.Count != 1) throw new JinjaTemplateException("loop() takes exactly one argument");
        return recurse(args.Positional[0], depth0 + 1);
    }
}
