using System.Globalization;
using System.Text;

namespace Engine.Chat.Jinja;

/// <summary>Python's json.dumps for template values, as transformers' tojson filter calls it: ensure_ascii, indent,
/// separators and sort_keys. The caller picks Python's default separators (", " and ": ", or "," and ": " with an
/// indent).</summary>
internal static class PyJson
{
    /// <param name="EnsureAscii">Escape every non-ASCII character as \uXXXX.</param>
    /// <param name="Indent">The text of one indentation level (json.dumps' indent as spaces, or its string); null =
    /// everything on one line.</param>
    /// <param name="ItemSeparator">Between items (Python: ", ", or "," with an indent).</param>
    /// <param name="KeySeparator">Between a key and its value.</param>
    /// <param name="SortKeys">Write dict keys in sorted order.</param>
    public sealed record Options(bool EnsureAscii = false, string? Indent = null,
        string ItemSeparator = ", ", string KeySeparator = ": ", bool SortKeys = false);

    public static string Dumps(object? value, Options options, int maxLength)
    {
        var sb = new StringBuilder();
        Write(sb, value, options, 0, maxLength);
        return sb.ToString();
    }

    static void Write(StringBuilder sb, object? v, Options o, int level, int maxLength)
    {
        if (level > 100) throw new JinjaTemplateException("tojson: value nested too deeply");
        if (sb.Length > maxLength) throw new JinjaTemplateException($"tojson: output longer than {maxLength} characters");
        JinjaInterpreter.Charge();
        switch (v)
        {
            case null: sb.Append("null"); break;
            case bool b: sb.Append(b ? "true" : "false"); break;
            case long n: sb.Append(n.ToString(CultureInfo.InvariantCulture)); break;
            case System.Numerics.BigInteger big: sb.Append(big.ToString(CultureInfo.InvariantCulture)); break;
            case double d:
                sb.Append(double.IsNaN(d) ? "NaN" : double.IsInfinity(d) ? (d > 0 ? "Infinity" : "-Infinity") : Py.FloatRepr(d));
                break;
            case string s: WriteString(sb, s, o.EnsureAscii); break;
            case Markup m: WriteString(sb, m.Text, o.EnsureAscii); break;
            case JinjaList l:
                WriteContainer(sb, '[', ']', l.Items.Select(x => (HasKey: false, Key: (object?)null, Value: x)), l.Count, o, level, maxLength);
                break;
            case JinjaDict d:
                var pairs = d.Pairs.Select(p => (p.Key, p.Value));
                if (o.SortKeys) pairs = Py.Sorted(pairs, p => p.Key);
                WriteContainer(sb, '{', '}', pairs.Select(p => (HasKey: true, Key: (object?)KeyText(p.Key), p.Value)), d.Count, o, level, maxLength);
                break;
            default:
                throw new JinjaTemplateException($"Object of type {Py.TypeName(v)} is not JSON serializable");
        }
    }

    /// <summary>json.dumps turns int, float, bool and None keys into their JSON text; other keys are an error.</summary>
    static string KeyText(object? key) => key switch
    {
        string s => s,
        null => "null",
        bool b => b ? "true" : "false",
        long n => n.ToString(CultureInfo.InvariantCulture),
        double d => Py.FloatRepr(d),
        _ => throw new JinjaTemplateException($"keys must be str, int, float, bool or None, not {Py.TypeName(key)}"),
    };

    static void WriteContainer(StringBuilder sb, char open, char close, IEnumerable<(bool HasKey, object? Key, object? Value)> items,
        int count, Options o, int level, int maxLength)
    {
        sb.Append(open);
        if (count == 0) { sb.Append(close); return; }
        var indent = o.Indent;
        bool first = true;
        foreach (var (hasKey, key, value) in items)
        {
            if (!first) sb.Append(o.ItemSeparator);
            first = false;
            if (indent is not null) NewLine(sb, indent, level + 1);
            if (hasKey)
            {
                WriteString(sb, (string)key!, o.EnsureAscii);
                sb.Append(o.KeySeparator);
            }
            Write(sb, value, o, level + 1, maxLength);
        }
        if (indent is not null) NewLine(sb, indent, level);
        sb.Append(close);
    }

    static void NewLine(StringBuilder sb, string indent, int level)
    {
        sb.Append('\n');
        for (int i = 0; i < level; i++) sb.Append(indent);
    }

    static void WriteString(StringBuilder sb, string s, bool ensureAscii)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || (ensureAscii && c > 0x7E))
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
