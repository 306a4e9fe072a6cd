using System.Diagnostics.CodeAnalysis;

namespace Engine.Chat.Jinja;

// Template values form a closed set, so a template can never reach a .NET object:
//   None = null, bool, long (Python int), double (Python float), string,
//   JinjaList (list or tuple), JinjaDict (insertion-ordered dict), JinjaIterator, Markup, Undefined, Namespace,
//   LoopContext, Cycler, JinjaCallable.

/// <summary>jinja2's default Undefined: falsy, prints empty, iterates empty; any other use is an error that names
/// what was missing.</summary>
internal sealed class Undefined(string description)
{
    public static readonly Undefined Anonymous = new("value is undefined");

    /// <summary>jinja2's message: "'x' is undefined" or "'dict object' has no attribute 'y'".</summary>
    public string Description { get; } = description;

    public JinjaTemplateException Error() => new(Description);
}

internal sealed class JinjaList(List<object?> items, bool isTuple = false, string[]? fieldNames = null)
{
    public List<object?> Items { get; } = items;
    public bool IsTuple { get; } = isTuple;

    /// <summary>A named tuple's field names (groupby's (grouper, list)), readable as attributes; null otherwise.</summary>
    public string[]? FieldNames { get; } = fieldNames;

    public int Count => Items.Count;
    public static JinjaList Tuple(params object?[] items) => new([.. items], isTuple: true);
}

/// <summary>markupsafe's Markup, which the safe and escape filters return: text that is already escaped. Adding a
/// plain string to it, or formatting one into it with %, escapes that string (this is how `"..."|safe + x|tojson`
/// comes out HTML-escaped in jinja2). Everything else treats it as its text.</summary>
internal sealed class Markup(string text)
{
    public string Text { get; } = text;

    /// <summary>markupsafe.escape for a plain string; a Markup stays as it is.</summary>
    public static Markup Escape(object? v) => v as Markup ?? new Markup(Html(Py.Str(v)));

    public static string Html(string s) => s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;")
        .Replace("\"", "&#34;").Replace("'", "&#39;");
}

/// <summary>A Python generator or iterator, which several jinja2 filters return (map, select, reject, selectattr,
/// rejectattr, unique, batch, items, reverse): always truthy, no len(), not JSON-serializable, and consumed by
/// iterating: a second loop over it sees only what is left.</summary>
internal sealed class JinjaIterator(IReadOnlyList<object?> items, string typeName = "generator")
{
    int _position;

    public string TypeName { get; } = typeName;

    /// <summary>The items not yet consumed; consumes them all.</summary>
    public IReadOnlyList<object?> Drain()
    {
        var rest = items.Skip(_position).ToList();
        _position = items.Count;
        return rest;
    }

    /// <summary>next(): the next item, or false when exhausted.</summary>
    public bool TryNext(out object? item)
    {
        item = _position < items.Count ? items[_position] : null;
        return _position++ < items.Count;
    }
}

internal sealed class JinjaDict
{
    /// <summary>Stands for a None key, since dictionary keys cannot be null.</summary>
    static readonly object NoneKey = new();

    readonly OrderedDictionary<object, object?> _items = new(PyKeyComparer.Instance);

    public int Count => _items.Count;

    public IEnumerable<object?> Keys => _items.Keys.Select(FromKey);
    public IEnumerable<object?> Values => _items.Values;
    public IEnumerable<KeyValuePair<object?, object?>> Pairs =>
        _items.Select(p => new KeyValuePair<object?, object?>(FromKey(p.Key), p.Value));

    public void Set(object? key, object? value) => _items[ToKey(key)] = value;

    public bool TryGet(object? key, out object? value)
    {
        value = null;
        key = Py.Plain(key);
        return PyKeyComparer.IsHashable(key) && _items.TryGetValue(ToKey(key), out value);
    }

    public bool ContainsKey(object? key) => TryGet(key, out _);

    static object ToKey(object? key)
    {
        key = Py.Plain(key);
        return PyKeyComparer.IsHashable(key) ? key ?? NoneKey : throw new JinjaTemplateException($"unhashable type: '{Py.TypeName(key)}'");
    }

    static object? FromKey(object key) => ReferenceEquals(key, NoneKey) ? null : key;

    /// <summary>Python dict equality of keys: 1, 1.0 and True are one key; strings compare ordinally; tuples by items.</summary>
    sealed class PyKeyComparer : IEqualityComparer<object>
    {
        public static readonly PyKeyComparer Instance = new();

        /// <summary>Tuples nest at most this deep as keys, so hashing one cannot overflow the stack.</summary>
        const int MaxKeyDepth = 50;

        public static bool IsHashable(object? key) => IsHashable(key, 0);

        static bool IsHashable(object? key, int depth) =>
            key is null or string or long or double or bool or System.Numerics.BigInteger
            || (key is JinjaList { IsTuple: true } t && depth < MaxKeyDepth && t.Items.All(item => IsHashable(item, depth + 1)));

        public new bool Equals(object? x, object? y) => Py.Equal(x, y);

        public int GetHashCode([DisallowNull] object obj) => obj switch
        {
            bool b => (b ? 1L : 0L).GetHashCode(),
            double d when d == Math.Floor(d) && Math.Abs(d) < 9e18 => ((long)d).GetHashCode(),
            JinjaList t => t.Items.Aggregate(17, (h, item) => h * 31 + (item is null ? 0 : GetHashCode(item))),
            _ => obj.GetHashCode(),
        };
    }
}

/// <summary>jinja2's cycler(*items): `next()` returns the current item and moves on, `current` reads it, `reset()`
/// goes back to the first.</summary>
internal sealed class Cycler(List<object?> items)
{
    int _position;

    public object? GetAttribute(string name) => name switch
    {
        "current" => items[_position],
        "next" => new JinjaCallable("cycler.next", _ =>
        {
            var item = items[_position];
            _position = (_position + 1) % items.Count;
            return item;
        }),
        "reset" => new JinjaCallable("cycler.reset", _ =>
        {
            _position = 0;
            return null;
        }),
        _ => new Undefined($"'Cycler' object has no attribute '{name}'"),
    };
}

/// <summary>namespace(): the one object a template may assign attributes to ({% set ns.x = ... %}).</summary>
internal sealed class Namespace
{
    public Dictionary<string, object?> Attributes { get; } = new(StringComparer.Ordinal);
}

/// <summary>A function a template can call: a global, a bound string/dict/list method, a macro, loop.cycle.</summary>
internal sealed class JinjaCallable(string name, Func<CallArguments, object?> invoke)
{
    public string Name { get; } = name;
    public object? Invoke(CallArguments args) => invoke(args);
}

/// <summary>Evaluated call arguments, with Python's rules for binding them to named parameters.</summary>
internal sealed class CallArguments(List<object?> positional, List<KeyValuePair<string, object?>> keyword)
{
    public static readonly CallArguments Empty = new([], []);

    public List<object?> Positional { get; } = positional;
    public List<KeyValuePair<string, object?>> Keyword { get; } = keyword;

    /// <summary>Binds the arguments to <paramref name="names"/> like a Python signature: a missing one takes its entry
    /// in <paramref name="defaults"/> (Undefined past its end), a surplus or unknown one is an error naming
    /// <paramref name="function"/>.</summary>
    public object?[] Bind(string function, string[] names, object?[] defaults)
    {
        if (Positional.Count > names.Length)
            throw new JinjaTemplateException($"{function}() takes at most {names.Length} argument(s) ({Positional.Count} given)");
        var values = new object?[names.Length];
        var given = new bool[names.Length];
        for (int i = 0; i < Positional.Count; i++) { values[i] = Positional[i]; given[i] = true; }
        foreach (var (key, value) in Keyword)
        {
            int index = Array.IndexOf(names, key);
            if (index < 0) throw new JinjaTemplateException($"{function}() got an unexpected keyword argument '{key}'");
            if (given[index]) throw new JinjaTemplateException($"{function}() got multiple values for argument '{key}'");
            values[index] = value;
            given[index] = true;
        }
        for (int i = 0; i < names.Length; i++)
            if (!given[i]) values[i] = i < defaults.Length ? defaults[i] : Undefined.Anonymous;
        return values;
    }
}
