using System.Globalization;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Engine.Formats;
using Engine.Formats.Gguf;

namespace Engine;

/// <summary>
/// A control vector (steering vector) as llama.cpp has them: one direction per layer, added to the hidden state of
/// every position at that layer's output (the hook point "l_out", TransformerLens <c>blocks.L.hook_resid_post</c>).
/// Layers are the model's blocks numbered from 0; the direction of layer L is added after block L. Layer 0 is never
/// steered: llama.cpp's files start at "direction.1", so a file written for a model of N layers holds directions 1 to
/// N - 1.
/// <code>
/// var calm = ControlVector.Load("calm.gguf", strength: 0.8f);
/// using (model.ApplyControlVector(calm))            // every session of the model, until disposed
///     await foreach (var token in session.GenerateAsync("Today I feel")) Console.Write(token.Text);
/// </code>
/// Several files are combined with <see cref="Sum"/> (llama.cpp's repeated <c>--control-vector</c> options), a layer
/// range is chosen with <see cref="ForLayers"/> (<c>--control-vector-layer-range</c>), and directions a researcher
/// computed come in through <see cref="FromDirections"/>. A vector is immutable: each of those returns a new one.
/// </summary>
public sealed class ControlVector
{
    /// <summary>Directions wider than this are refused before anything is allocated (the widest models have 16k).</summary>
    const int MaxWidth = 1 << 20;
    const string DirectionPrefix = "direction.";

    // Keyed by layer: a file names its layers, so a dictionary (not an array sized by the largest name) keeps a crafted
    // "direction.2000000000" from allocating gigabytes.
    readonly SortedDictionary<int, float[]> _directions;
    // The file each layer's direction came from (the first one, when files were summed), for messages; null when the
    // vector was built from arrays.
    readonly Dictionary<int, string> _sources;

    ControlVector(SortedDictionary<int, float[]> directions, Dictionary<int, string> sources, int width)
    {
        _directions = directions;
        _sources = sources;
        Width = width;
        Layers = [.. directions.Keys];
    }

    /// <summary>Values in each direction: the embedding length of the models it fits.</summary>
    public int Width { get; }

    /// <summary>The layers this vector has a direction for, in ascending order (empty after a <see cref="ForLayers"/>
    /// that kept none).</summary>
    public IReadOnlyList<int> Layers { get; }

    /// <summary>The direction added to the output of layer <paramref name="layer"/>.</summary>
    /// <param name="layer">One of <see cref="Layers"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException">The vector has no direction for that layer.</exception>
    public ReadOnlySpan<float> Direction(int layer) => _directions.TryGetValue(layer, out var values) ? values
        : throw new ArgumentOutOfRangeException(nameof(layer), $"this control vector has no direction for layer {layer} (it has: {string.Join(", ", Layers)})");

    /// <summary>Reads a llama.cpp control-vector file (GGUF with F32 one-dimensional tensors "direction.N", as
    /// llama.cpp's cvector-generator writes them) and multiplies every direction by <paramref name="strength"/>,
    /// as llama.cpp's <c>--control-vector-scaled FILE STRENGTH</c> does. Metadata is not needed and not read.</summary>
    /// <param name="path">The file.</param>
    /// <param name="strength">The factor every direction is multiplied by (1: as written; negative: steer away).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="strength"/> is NaN or infinite.</exception>
    /// <exception cref="FileNotFoundException">There is no such file.</exception>
    /// <exception cref="ModelFormatException">The file is not readable GGUF (truncated, corrupt, not GGUF).</exception>
    /// <exception cref="ControlVectorException">The file is GGUF but not a control vector: no tensors, a tensor not named
    /// "direction.N" with N of 1 or more, not F32, not one-dimensional, directions of different widths, or NaN/infinite
    /// values. The message names the file and the tensor.</exception>
    public static ControlVector Load(string path, float strength = 1f)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!float.IsFinite(strength))
            throw new ArgumentOutOfRangeException(nameof(strength), $"a control vector's strength must be a finite number, got {strength}");
        if (!File.Exists(path)) throw new FileNotFoundException($"no control vector file at '{path}'", path);
        using var file = GgufFile.Open(path);
        if (file.Tensors.Count == 0)
            throw new ControlVectorException(ControlVectorErrorKind.NoDirections, "holds no tensors; a control vector holds F32 directions named direction.1, direction.2, ...", path);
        var directions = new SortedDictionary<int, float[]>();
        var sources = new Dictionary<int, string>();
        int width = -1;
        // In file order, as llama.cpp sums them: two names for one layer ("direction.1", "direction.01") add up.
        foreach (var tensor in file.Tensors)
        {
            int layer = ParseLayer(tensor.Name, path);
            if (tensor.Type != GgmlType.F32)
                throw new ControlVectorException(ControlVectorErrorKind.NotF32, $"is {tensor.Type}; control-vector directions are F32", path, tensor.Name);
            // ggml counts dimensions without the trailing ones, so [n, 1] is one-dimensional to llama.cpp too.
            if (tensor.Shape.Count == 0 || tensor.Shape.Skip(1).Any(d => d != 1))
                throw new ControlVectorException(ControlVectorErrorKind.NotOneDimensional, $"has shape {tensor.ShapeText}; a direction is one-dimensional", path, tensor.Name);
            if (tensor.ElementCount < 1 || tensor.ElementCount > MaxWidth)
                throw new ControlVectorException(ControlVectorErrorKind.WidthMismatch, $"has {tensor.ElementCount} values; a direction has from 1 to {MaxWidth}", path, tensor.Name);
            int count = (int)tensor.ElementCount;
            if (width == -1) width = count;
            else if (count != width)
                throw new ControlVectorException(ControlVectorErrorKind.WidthMismatch, $"has {count} values, but the file's first direction has {width}", path, tensor.Name);
            var values = MemoryMarshal.Cast<byte, float>(file.GetTensor(tensor.Name).Bytes);
            for (int i = 0; i < values.Length; i++)
                if (!float.IsFinite(values[i]))
                    throw new ControlVectorException(ControlVectorErrorKind.NonFiniteValue, $"value {i} is {values[i].ToString(CultureInfo.InvariantCulture)}", path, tensor.Name);
            if (!directions.TryGetValue(layer, out var sum))
            {
                directions[layer] = sum = new float[width];
                sources[layer] = path;
            }
            for (int i = 0; i < sum.Length; i++) sum[i] += values[i] * strength;
        }
        return new ControlVector(directions, sources, width);
    }

    /// <summary>The layer a tensor name gives: "direction." then a whole number of 1 or more. (llama.cpp reads the
    /// number with std::stoi, which also takes "direction.3abc" as layer 3; such a name is refused here.)</summary>
    static int ParseLayer(string name, string path)
    {
        var digits = name.StartsWith(DirectionPrefix, StringComparison.Ordinal) ? name[DirectionPrefix.Length..] : null;
        if (digits is null || digits.Length == 0 || !digits.All(char.IsAsciiDigit)
            || !int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out int layer))
            throw new ControlVectorException(ControlVectorErrorKind.InvalidName,
                "is not a direction; a control vector holds only tensors named direction.N, N the layer (1 or more)", path, name);
        if (layer == 0)
            throw new ControlVectorException(ControlVectorErrorKind.LayerOutOfRange,
                "layer 0 is never steered; directions start at direction.1", path, name);
        return layer;
    }

    /// <summary>A control vector from directions computed elsewhere (for example the mean difference of two sets of
    /// hidden states read with a hook). The arrays are copied.</summary>
    /// <param name="directions">Layer (1 or more) to direction; every direction equally wide, finite, at least one.</param>
    /// <exception cref="ArgumentException">No directions, a layer below 1, directions of different widths, an empty
    /// direction, or a NaN or infinite value.</exception>
    public static ControlVector FromDirections(IReadOnlyDictionary<int, float[]> directions)
    {
        ArgumentNullException.ThrowIfNull(directions);
        if (directions.Count == 0) throw new ArgumentException("a control vector needs at least one direction", nameof(directions));
        var copies = new SortedDictionary<int, float[]>();
        int width = -1;
        foreach (var (layer, values) in directions)
        {
            if (layer < 1) throw new ArgumentException($"layer {layer}: directions are for layers 1 and up (layer 0 is never steered)", nameof(directions));
            ArgumentNullException.ThrowIfNull(values, nameof(directions));
            if (values.Length == 0 || values.Length > MaxWidth)
                throw new ArgumentException($"layer {layer}: a direction has from 1 to {MaxWidth} values, got {values.Length}", nameof(directions));
            if (width == -1) width = values.Length;
            else if (values.Length != width)
                throw new ArgumentException($"layer {layer}: the direction has {values.Length} values, another has {width}", nameof(directions));
            int bad = Array.FindIndex(values, v => !float.IsFinite(v));
            if (bad >= 0) throw new ArgumentException($"layer {layer}: value {bad} is {values[bad].ToString(CultureInfo.InvariantCulture)}", nameof(directions));
            copies[layer] = (float[])values.Clone();
        }
        return new ControlVector(copies, [], width);
    }

    /// <summary>The sum of several control vectors, layer by layer (a layer missing from one adds nothing): llama.cpp's
    /// repeated <c>--control-vector</c> and <c>--control-vector-scaled</c> options, added in the order given.</summary>
    /// <param name="vectors">At least one vector; all of one width.</param>
    /// <exception cref="ArgumentException"><paramref name="vectors"/> is empty.</exception>
    /// <exception cref="ControlVectorException">The vectors differ in width (<see cref="ControlVectorErrorKind.WidthMismatch"/>,
    /// naming the files).</exception>
    public static ControlVector Sum(IEnumerable<ControlVector> vectors)
    {
        ArgumentNullException.ThrowIfNull(vectors);
        SortedDictionary<int, float[]>? directions = null;
        Dictionary<int, string> sources = [];
        ControlVector? first = null;
        foreach (var vector in vectors)
        {
            ArgumentNullException.ThrowIfNull(vector, nameof(vectors));
            if (first is null)
            {
                first = vector;
                directions = new(vector._directions.ToDictionary(p => p.Key, p => (float[])p.Value.Clone()));
                sources = new(vector._sources);
                continue;
            }
            if (vector.Width != first.Width)
                throw new ControlVectorException(ControlVectorErrorKind.WidthMismatch,
                    $"its directions have {vector.Width} values, but those of {first.Describe()} have {first.Width}", vector.FirstFile);
            foreach (var (layer, values) in vector._directions)
            {
                if (directions!.TryGetValue(layer, out var sum))
                    for (int i = 0; i < sum.Length; i++) sum[i] += values[i];
                else
                {
                    directions[layer] = (float[])values.Clone();
                    if (vector._sources.TryGetValue(layer, out var source)) sources[layer] = source;
                }
            }
        }
        if (first is null) throw new ArgumentException("there is no control vector to sum", nameof(vectors));
        return new ControlVector(directions!, sources, first.Width);
    }

    /// <summary>This vector with every direction multiplied by <paramref name="factor"/>.</summary>
    /// <param name="factor">A finite number (negative steers the other way).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="factor"/> is NaN or infinite.</exception>
    public ControlVector Scale(float factor)
    {
        if (!float.IsFinite(factor))
            throw new ArgumentOutOfRangeException(nameof(factor), $"a control vector's factor must be a finite number, got {factor}");
        var scaled = new SortedDictionary<int, float[]>();
        foreach (var (layer, values) in _directions) scaled[layer] = [.. values.Select(v => v * factor)];
        return new ControlVector(scaled, new(_sources), Width);
    }

    /// <summary>This vector on layers <paramref name="firstLayer"/> to <paramref name="lastLayer"/> only, both included:
    /// llama.cpp's <c>--control-vector-layer-range FIRST LAST</c>. Layers outside the vector are simply not there, so
    /// (1, LayerCount) keeps everything, as llama.cpp's default range does.</summary>
    /// <param name="firstLayer">The first layer kept.</param>
    /// <param name="lastLayer">The last layer kept, not below <paramref name="firstLayer"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="lastLayer"/> is below <paramref name="firstLayer"/>.</exception>
    public ControlVector ForLayers(int firstLayer, int lastLayer)
    {
        if (lastLayer < firstLayer)
            throw new ArgumentOutOfRangeException(nameof(lastLayer), $"the layer range {firstLayer}..{lastLayer} is empty: the last layer comes before the first");
        var kept = new SortedDictionary<int, float[]>();
        foreach (var (layer, values) in _directions)
            if (layer >= firstLayer && layer <= lastLayer) kept[layer] = values;
        return new ControlVector(kept, _sources.Where(p => kept.ContainsKey(p.Key)).ToDictionary(), Width);
    }

    /// <summary>Writes the vector as a llama.cpp control-vector file (F32 tensors "direction.N", with the metadata
    /// llama.cpp's cvector-generator writes), which llama.cpp's <c>--control-vector</c> reads. The file is written to a
    /// temporary name and renamed, so it is never left half-written.</summary>
    /// <param name="path">The file to create or replace.</param>
    /// <param name="modelHint">The architecture it was made for ("llama", "qwen2"), stored as controlvector.model_hint.</param>
    /// <exception cref="IOException">The file cannot be written.</exception>
    public void Save(string path, string modelHint = "")
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(modelHint);
        var writer = new GgufWriter()
            .AddMetadata(GgufKeys.Architecture, "controlvector")
            .AddMetadata("controlvector.model_hint", modelHint)
            .AddMetadata("controlvector.layer_count", _directions.Count);
        foreach (var (layer, values) in _directions)
            writer.AddTensor(DirectionPrefix + layer.ToString(CultureInfo.InvariantCulture), GgmlType.F32, [values.Length],
                MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
        writer.WriteTo(path);
    }

    /// <summary>Checks that the vector can steer a model of <paramref name="layerCount"/> blocks and embedding length
    /// <paramref name="embeddingLength"/>.</summary>
    /// <exception cref="ControlVectorException">The width differs from the embedding length, or a direction is for a
    /// layer the model does not have (llama.cpp would skip it silently; a file made for another model is the likely cause).</exception>
    internal void CheckFits(int layerCount, int embeddingLength)
    {
        if (Width != embeddingLength)
            throw new ControlVectorException(ControlVectorErrorKind.WidthMismatch,
                $"the directions have {Width} values, but the model's embedding length is {embeddingLength}", FirstFile);
        foreach (var layer in _directions.Keys)
            if (layer >= layerCount)
            {
                _sources.TryGetValue(layer, out var source);
                throw new ControlVectorException(ControlVectorErrorKind.LayerOutOfRange,
                    $"the model has {layerCount} layers, so a control vector steers layers 1 to {layerCount - 1}" +
                    (source is null ? $", not layer {layer}" : ""),
                    source, source is null ? null : DirectionPrefix + layer.ToString(CultureInfo.InvariantCulture));
            }
    }

    /// <summary>Steers a model through its hooks: one hook on "l_out" of each layer the vector has a direction for, adding
    /// that direction to every row, for as long as the result is not disposed. This is where llama.cpp adds it too
    /// (build_cvec right after the block's residual add, before the next block reads it), so the next layer, the final
    /// norm and every hook registered later see the steered values.</summary>
    /// <param name="addHook">The registry: a model's (every sequence) or a session's (its own rows only).</param>
    /// <param name="layerCount">The model's blocks.</param>
    /// <param name="embeddingLength">The model's hidden-state width.</param>
    /// <exception cref="ControlVectorException">The vector does not fit the model (<see cref="CheckFits"/>).</exception>
    internal IDisposable AddTo(Func<string, ForwardHook, IDisposable> addHook, int layerCount, int embeddingLength)
    {
        CheckFits(layerCount, embeddingLength);
        if (_directions.Count == 0) return NothingToRemove.Instance;
        var byLayer = new float[]?[layerCount];
        foreach (var (layer, values) in _directions) byLayer[layer] = values;
        var points = string.Join(',', _directions.Keys.Select(layer => "l_out." + layer.ToString(CultureInfo.InvariantCulture)));
        return addHook(points, (context, values) =>
        {
            if (byLayer[context.Layer] is not { } direction) return;
            for (int row = 0; row < context.Rows; row++)
            {
                var hidden = values.Slice(row * context.Width, context.Width);
                TensorPrimitives.Add(hidden, direction, hidden);
            }
        });
    }

    /// <summary>The scope of a vector that kept no layer: nothing was registered.</summary>
    sealed class NothingToRemove : IDisposable
    {
        public static readonly NothingToRemove Instance = new();
        public void Dispose() { }
    }

    string? FirstFile => _sources.Count == 0 ? null : _sources[_sources.Keys.Min()];

    string Describe() => FirstFile ?? "the first control vector";
}
