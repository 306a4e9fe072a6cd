using System.Globalization;

namespace Engine.Cli;

/// <summary>A wrong command line: printed as one line with a hint, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>Parsed arguments: positionals plus --name value / --name value value / --flag options. Small and strict:
/// an unknown option is an error naming it, so typos never pass silently.</summary>
public sealed class CommandLine
{
    readonly Dictionary<string, string?> _options = new(StringComparer.Ordinal);
    readonly Dictionary<string, List<string>> _repeated = new(StringComparer.Ordinal);
    // Every value of the options taking two, by option, in the order given.
    readonly Dictionary<string, List<(string First, string Second)>> _pairs = new(StringComparer.Ordinal);
    // Every use of a repeatable option, across options, in the order given (for options whose order matters together).
    readonly List<(string Name, string[] Values)> _sequence = [];
    readonly HashSet<string> _used = new(StringComparer.Ordinal);
    public List<string> Positionals { get; } = [];

    /// <param name="args">The arguments after the command's name.</param>
    /// <param name="flags">Options that take no value.</param>
    /// <param name="repeatable">Options that may be given several times (read them with <see cref="Strings"/>, or
    /// <see cref="Pairs"/> for options taking two values).</param>
    /// <param name="pairs">Options that take two values, "--name A B" (read them with <see cref="Pair"/> or
    /// <see cref="Pairs"/>). Strict: both values must be there and neither may look like an option ("--x").</param>
    public CommandLine(IEnumerable<string> args, IReadOnlySet<string> flags, IReadOnlySet<string>? repeatable = null, IReadOnlySet<string>? pairs = null)
    {
        var list = args.ToList();
        for (int i = 0; i < list.Count; i++)
        {
            var a = list[i];
            if (a == "--") { Positionals.AddRange(list.Skip(i + 1)); break; }
            if (a.StartsWith("--") || (a.StartsWith('-') && a.Length == 2 && !char.IsDigit(a[1])))
            {
                string name = a.TrimStart('-');
                string? value = null;
                int eq = name.IndexOf('=');
                if (eq >= 0) { value = name[(eq + 1)..]; name = name[..eq]; }
                if (pairs?.Contains(name) == true)
                {
                    var first = value ?? PairValue(list, ++i, name, "first");
                    var second = PairValue(list, ++i, name, "second");
                    if (_options.ContainsKey(name) && repeatable?.Contains(name) != true)
                        throw new UsageException($"option --{name} is given twice");
                    if (!_pairs.TryGetValue(name, out var given)) _pairs[name] = given = [];
                    given.Add((first, second));
                    _sequence.Add((name, [first, second]));
                    _options[name] = first;
                    continue;
                }
                if (value is null && !flags.Contains(name))
                {
                    if (i + 1 >= list.Count) throw new UsageException($"option {a} needs a value");
                    value = list[++i];
                }
                if (repeatable?.Contains(name) == true && value is not null)
                {
                    if (!_repeated.TryGetValue(name, out var values)) _repeated[name] = values = [];
                    values.Add(value);
                    _sequence.Add((name, [value]));
                    _options[name] = value;
                    continue;
                }
                if (_options.ContainsKey(name)) throw new UsageException($"option --{name} is given twice");
                _options[name] = value;
            }
            else Positionals.Add(a);
        }
    }

    /// <summary>One of the two values of option <paramref name="name"/>: the argument at <paramref name="at"/>, which must
    /// exist and not be an option (a negative number is a value).</summary>
    static string PairValue(List<string> args, int at, string name, string which)
    {
        if (at >= args.Count) throw new UsageException($"option --{name} needs two values, and its {which} is missing");
        var value = args[at];
        if (value.StartsWith("--") || (value.StartsWith('-') && value.Length == 2 && !char.IsDigit(value[1])))
            throw new UsageException($"option --{name} needs two values, and its {which} is missing (found option {value})");
        return value;
    }

    /// <summary>The two values of an option that takes two and is given at most once; null when absent.</summary>
    public (string First, string Second)? Pair(string name)
    {
        _used.Add(name);
        return _pairs.TryGetValue(name, out var given) ? given[^1] : null;
    }

    /// <summary>Every pair of values of a repeatable option that takes two, in the order given (none when absent).</summary>
    public IReadOnlyList<(string First, string Second)> Pairs(string name)
    {
        _used.Add(name);
        return _pairs.TryGetValue(name, out var given) ? given : [];
    }

    /// <summary>Every use of the repeatable options named, in the order given across all of them: each with the option's
    /// name and its value (or two values).</summary>
    public IReadOnlyList<(string Name, string[] Values)> InOrder(params string[] names)
    {
        foreach (var name in names) _used.Add(name);
        return [.. _sequence.Where(use => names.Contains(use.Name))];
    }

    public bool Has(string name) { _used.Add(name); return _options.ContainsKey(name); }

    /// <summary>Every value of a repeatable option, in the order given (none when absent).</summary>
    public IReadOnlyList<string> Strings(string name, string? alias = null)
    {
        _used.Add(name);
        if (alias is not null) _used.Add(alias);
        var all = new List<string>();
        if (_repeated.TryGetValue(name, out var values)) all.AddRange(values);
        if (alias is not null && _repeated.TryGetValue(alias, out var aliased)) all.AddRange(aliased);
        return all;
    }

    public string? String(string name, string? alias = null)
    {
        _used.Add(name);
        if (alias is not null) _used.Add(alias);
        return _options.TryGetValue(name, out var v) ? v : alias is not null && _options.TryGetValue(alias, out var w) ? w : null;
    }

    public int Int(string name, int fallback, int min = int.MinValue, int max = int.MaxValue, string? alias = null)
    {
        var text = String(name, alias);
        if (text is null) return fallback;
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) || v < min || v > max)
            throw new UsageException($"--{name} must be an integer in [{min}, {max}], got '{text}'");
        return v;
    }

    public double Double(string name, double fallback, double min, double max)
    {
        var text = String(name);
        if (text is null) return fallback;
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || double.IsNaN(v) || v < min || v > max)
            throw new UsageException($"--{name} must be a number in [{min}, {max}], got '{text}'");
        return v;
    }

    public ulong? ULong(string name)
    {
        var text = String(name);
        if (text is null) return null;
        return ulong.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out ulong v) ? v
            : throw new UsageException($"--{name} must be a non-negative integer, got '{text}'");
    }

    /// <summary>A size in bytes: "4GiB", "512MiB", "1.5G", "800M", "64K" or a plain number of bytes; null when absent.</summary>
    public long? Size(string name)
    {
        var text = String(name);
        if (text is null) return null;
        var t = text.Trim();
        int unitAt = t.Length;
        while (unitAt > 0 && char.IsLetter(t[unitAt - 1])) unitAt--;
        long scale = t[unitAt..].ToLowerInvariant() switch
        {
            "" or "b" => 1,
            "k" or "kb" or "kib" => 1L << 10,
            "m" or "mb" or "mib" => 1L << 20,
            "g" or "gb" or "gib" => 1L << 30,
            "t" or "tb" or "tib" => 1L << 40,
            _ => 0,
        };
        if (scale == 0 || !double.TryParse(t[..unitAt], NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !(v > 0) || v * scale > long.MaxValue)
            throw new UsageException($"--{name} must be a size such as 4GiB, 512MiB or a number of bytes, got '{text}'");
        return (long)(v * scale);
    }

    /// <summary>Fails on any option no command asked about (call after reading them all).</summary>
    public void RejectUnknown()
    {
        var unknown = _options.Keys.Where(k => !_used.Contains(k)).ToList();
        if (unknown.Count > 0) throw new UsageException($"unknown option --{unknown[0]}");
    }

    /// <summary>"1 2 3" or "1,2,3" as token ids.</summary>
    public static int[] ParseTokens(string text)
    {
        var parts = text.Split([' ', ',', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries);
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out ids[i]) || ids[i] < 0)
                throw new UsageException($"--tokens must be non-negative integers, got '{parts[i]}'");
        return ids;
    }
}
