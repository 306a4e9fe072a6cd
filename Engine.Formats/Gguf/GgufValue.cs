namespace Engine.Formats.Gguf;

/// <summary>One metadata value, copied out of the file at load (metadata is small; weights are not copied).
/// Scalars are held as their natural .NET type; arrays as a typed array (byte[], sbyte[], ushort[], short[],
/// uint[], int[], float[], bool[], string[], ulong[], long[], double[]).</summary>
public sealed class GgufValue
{
    /// <summary>The value's GGUF type; <see cref="GgufValueType.Array"/> for an array.</summary>
    public GgufValueType Type { get; }
    /// <summary>For arrays, the element type; otherwise equal to <see cref="Type"/>.</summary>
    public GgufValueType ElementType { get; }
    /// <summary>The value: a boxed scalar of the .NET type matching <see cref="Type"/>, a string, or a typed array.
    /// An array read from a file is the file's own copy of the metadata: do not change it.</summary>
    public object Value { get; }

    /// <summary>Wraps a value for <see cref="GgufWriter.AddMetadata(string, GgufValue)"/>, which checks that the .NET
    /// type of <paramref name="value"/> matches <paramref name="type"/>; nothing is checked here. The typed
    /// AddMetadata overloads build the right GgufValue themselves.</summary>
    /// <param name="type">The GGUF type.</param>
    /// <param name="value">A scalar of the matching .NET type (uint for UInt32, ...), a string, or a typed array.</param>
    /// <param name="elementType">For an array, the element type; ignored (taken as <paramref name="type"/>) when null.</param>
    public GgufValue(GgufValueType type, object value, GgufValueType? elementType = null)
    {
        Type = type;
        Value = value;
        ElementType = elementType ?? type;
    }

    /// <summary>True for an array value.</summary>
    public bool IsArray => Type == GgufValueType.Array;
    /// <summary>Number of elements of an array value; 0 for a scalar.</summary>
    public int ArrayLength => Value is Array a ? a.Length : 0;

    /// <summary>The type as GGUF names it: "uint32", "string", "array[float32]".</summary>
    public string TypeName => IsArray ? $"array[{Name(ElementType)}]" : Name(Type);

    static string Name(GgufValueType t) => t.ToString().ToLowerInvariant();

    /// <summary>An integer scalar of any integer type, as a long (null for other types or a uint64 over long.MaxValue).</summary>
    public long? AsInteger() => Value switch
    {
        byte v => v, sbyte v => v, ushort v => v, short v => v, uint v => v, int v => v, long v => v,
        ulong v when v <= long.MaxValue => (long)v,
        _ => null,
    };

    /// <summary>A float32 or float64 scalar (integers are not silently converted).</summary>
    public double? AsFloat() => Value switch { float v => v, double v => v, _ => null };

    /// <summary>A display form, as <see cref="Format"/> with at most 8 array items.</summary>
    public override string ToString() => Format(this, 8);

    /// <summary>A display form: numbers in invariant culture, strings quoted and escaped (cut at 120 characters),
    /// arrays as "[a, b, ... (N items)]".</summary>
    /// <param name="value">The value to show.</param>
    /// <param name="maxItems">How many array elements to show before abbreviating.</param>
    public static string Format(GgufValue value, int maxItems)
    {
        static string One(object? o) => o switch
        {
            string s => Quote(s),
            float f => f.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            double d => d.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            bool b => b ? "true" : "false",
            _ => Convert.ToString(o, System.Globalization.CultureInfo.InvariantCulture) ?? "",
        };
        if (value.Value is not Array array || value.Value is string) return One(value.Value);
        var shown = new List<string>();
        for (int i = 0; i < array.Length && i < maxItems; i++) shown.Add(One(array.GetValue(i)));
        var more = array.Length > maxItems ? $", ... ({array.Length} items)" : "";
        return "[" + string.Join(", ", shown) + more + "]";
    }

    static string Quote(string s)
    {
        const int max = 120;
        var text = s.Length > max ? s[..max] + "..." : s;
        var sb = new System.Text.StringBuilder("\"");
        foreach (var c in text)
            sb.Append(c switch { '\n' => "\\n", '\r' => "\\r", '\t' => "\\t", '"' => "\\\"", '\\' => "\\\\", _ => c < ' ' ? $"\\u{(int)c:x4}" : c.ToString() });
        return sb.Append('"').ToString();
    }
}
