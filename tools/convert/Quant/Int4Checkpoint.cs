using System.Buffers.Binary;

namespace Engine.Convert.Quant;

/// <summary>The 4-bit checkpoint families `synth --format gptq|awq` writes.</summary>
public enum Int4Method { Gptq, Awq }

/// <summary>How the 4-bit linears of a GPTQ / AWQ folder are quantized: group size (input rows per scale, -1 = one group
/// over the whole input, GPTQ only), GPTQ's symmetric and act-order (desc_act) settings. AWQ is always zero-point.</summary>
public sealed record Int4Settings(Int4Method Method, int GroupSize = 128, bool Symmetric = true, bool ActOrder = false)
{
    public string Name => Method == Int4Method.Gptq
        ? $"GPTQ 4-bit g{GroupSize} {(Symmetric ? "sym" : "asym")}{(ActOrder ? " act-order" : "")}"
        : $"AWQ 4-bit g{GroupSize} zero-point";
}

/// <summary>One linear [out, in] quantized and packed as the writers store it (see the fixtures' FORMATS.md):
/// GPTQ v1 (AutoGPTQ <c>QuantLinear.pack</c>) qweight [in/8, out] with eight consecutive inputs per int32, qzeros
/// [groups, out/8] holding zero − 1, scales [groups, out] F16, g_idx [in]; AWQ gemm (AutoAWQ <c>WQLinear_GEMM</c>)
/// qweight [in, out/8] with eight outputs per int32 in the interleaved order 0, 2, 4, 6, 1, 3, 5, 7, qzeros [in/G, out/8]
/// likewise (no minus one), scales [in/G, out]. All little-endian bytes, ready for a safetensors file.</summary>
public sealed record PackedLinear(byte[] QWeight, long[] QWeightShape, byte[] QZeros, long[] QZerosShape, byte[] Scales, long[] ScalesShape,
    byte[]? GIdx, long[]? GIdxShape);

/// <summary>GPTQ's and AWQ's round-to-nearest quantizers (what the GPTQ solver ends in, and AWQ after its scaling),
/// written from AutoGPTQ <c>quantization/quantizer.py</c> and AutoAWQ <c>pseudo_quantize_tensor</c>, with the packers of
/// both. The synthesizer has no calibration data, so the values are round-to-nearest; the layout is the real one.</summary>
public static class Int4Checkpoint
{
    /// <summary>AWQ's nibble order when packing: nibble k of a word holds output column AwqOrder[k] of its 8-column pack.</summary>
    static readonly int[] AwqOrder = [0, 2, 4, 6, 1, 3, 5, 7];

    /// <summary>Quantizes W (row-major [outputs, inputs]) and packs it. `order` (act-order only) is the order GPTQ
    /// visited the inputs in: group k holds the inputs order[k·G .. k·G+G−1], so g_idx is not monotonic; null for
    /// contiguous groups.</summary>
    public static PackedLinear Pack(ReadOnlySpan<float> w, int inputs, int outputs, Int4Settings s, int[]? order)
    {
        if (inputs % 8 != 0 || outputs % 8 != 0)
            throw new ConvertException($"a 4-bit linear needs both widths to be multiples of 8, not [{outputs}, {inputs}]");
        int groupRows = s.GroupSize == -1 ? inputs : s.GroupSize;
        if (groupRows < 1 || inputs % groupRows != 0)
            throw new ConvertException($"group size {s.GroupSize} does not divide the input width {inputs}");
        if (s.Method == Int4Method.Awq && (order is not null || s.GroupSize == -1 || s.Symmetric))
            throw new ConvertException("AWQ is zero-point with contiguous groups: no act-order, no whole-row groups, no sym");
        int groups = inputs / groupRows;
        var group = new int[inputs];
        for (int p = 0; p < inputs; p++) group[order is null ? p : order[p]] = p / groupRows;

        var codes = new byte[(long)inputs * outputs];   // [input, output]
        var zeros = new byte[(long)groups * outputs];   // true zero points
        var scales = new Half[(long)groups * outputs];
        var weights = w.ToArray();
        Parallel.For(0, outputs, o =>
        {
            for (int g = 0; g < groups; g++)
            {
                float min = float.PositiveInfinity, max = float.NegativeInfinity;
                for (int p = g * groupRows; p < g * groupRows + groupRows; p++)
                {
                    float v = weights[(long)o * inputs + (order is null ? p : order[p])];
                    min = Math.Min(min, v); max = Math.Max(max, v);
                }
                (float scale, int zero) = s.Method == Int4Method.Awq ? AwqScale(min, max) : GptqScale(min, max, s.Symmetric);
                var stored = (Half)scale;
                scales[(long)g * outputs + o] = stored;
                zeros[(long)g * outputs + o] = (byte)zero;
                // Codes against the stored (f16) scale, so a reader's s·(q − z) is the nearest grid point to w.
                float inv = (float)stored;
                for (int p = g * groupRows; p < g * groupRows + groupRows; p++)
                {
                    int i = order is null ? p : order[p];
                    float v = weights[(long)o * inputs + i];
                    codes[(long)i * outputs + o] = (byte)Math.Clamp((int)MathF.Round(v / inv, MidpointRounding.ToEven) + zero, 0, 15);
                }
            }
        });
        return s.Method == Int4Method.Gptq
            ? PackGptq(codes, zeros, scales, group, inputs, outputs, groups)
            : PackAwq(codes, zeros, scales, inputs, outputs, groups);
    }

    /// <summary>AutoGPTQ's Quantizer (4 bits, maxq 15): the range is widened to hold 0; symmetric uses ±max|w| and
    /// zero 8. Asymmetric zeros are kept at 1 or more: a v1 file stores zero − 1 and cannot hold −1 (the "~13%" case
    /// AutoGPTQ warns about), so a zero of 0 is nudged to 1 as checkpoints that load correctly must have it.</summary>
    static (float Scale, int Zero) GptqScale(float min, float max, bool symmetric)
    {
        min = Math.Min(min, 0); max = Math.Max(max, 0);
        if (symmetric)
        {
            max = Math.Max(-min, max);
            min = -max;
        }
        if (min == 0 && max == 0) { min = -1; max = 1; }
        float scale = (max - min) / 15;
        int zero = symmetric ? 8 : Math.Clamp((int)MathF.Round(-min / (float)(Half)scale, MidpointRounding.ToEven), 1, 15);
        return (scale, zero);
    }

    /// <summary>AutoAWQ's zero-point quantizer: scale (max − min) / 15 (at least 1e-5), zero clamp(−round(min / scale), 0, 15).</summary>
    static (float Scale, int Zero) AwqScale(float min, float max)
    {
        float scale = Math.Max((max - min) / 15, 1e-5f);
        int zero = Math.Clamp(-(int)MathF.Round(min / (float)(Half)scale, MidpointRounding.ToEven), 0, 15);
        return (scale, zero);
    }

    static PackedLinear PackGptq(byte[] codes, byte[] zeros, Half[] scales, int[] group, int inputs, int outputs, int groups)
    {
        var qweight = new byte[(long)inputs / 8 * outputs * 4];
        for (int r = 0; r < inputs / 8; r++)
            for (int o = 0; o < outputs; o++)
            {
                uint word = 0;
                for (int k = 0; k < 8; k++) word |= (uint)codes[(long)(8 * r + k) * outputs + o] << (4 * k);
                BinaryPrimitives.WriteUInt32LittleEndian(qweight.AsSpan((int)(((long)r * outputs + o) * 4)), word);
            }
        var qzeros = new byte[(long)groups * (outputs / 8) * 4];
        for (int g = 0; g < groups; g++)
            for (int c = 0; c < outputs / 8; c++)
            {
                uint word = 0;
                for (int k = 0; k < 8; k++) word |= (uint)(zeros[(long)g * outputs + 8 * c + k] - 1) << (4 * k); // v1: zero − 1
                BinaryPrimitives.WriteUInt32LittleEndian(qzeros.AsSpan((g * (outputs / 8) + c) * 4), word);
            }
        var gIdx = new byte[inputs * 4];
        for (int i = 0; i < inputs; i++) BinaryPrimitives.WriteInt32LittleEndian(gIdx.AsSpan(i * 4), group[i]);
        return new PackedLinear(qweight, [inputs / 8, outputs], qzeros, [groups, outputs / 8], ScaleBytes(scales), [groups, outputs], gIdx, [inputs]);
    }

    static PackedLinear PackAwq(byte[] codes, byte[] zeros, Half[] scales, int inputs, int outputs, int groups)
    {
        static uint Word(byte[] values, long rowStart, int column)
        {
            uint word = 0;
            for (int k = 0; k < 8; k++) word |= (uint)values[rowStart + column + AwqOrder[k]] << (4 * k);
            return word;
        }
        var qweight = new byte[(long)inputs * (outputs / 8) * 4];
        for (int i = 0; i < inputs; i++)
            for (int c = 0; c < outputs / 8; c++)
                BinaryPrimitives.WriteUInt32LittleEndian(qweight.AsSpan((int)(((long)i * (outputs / 8) + c) * 4)), Word(codes, (long)i * outputs, 8 * c));
        var qzeros = new byte[(long)groups * (outputs / 8) * 4];
        for (int g = 0; g < groups; g++)
            for (int c = 0; c < outputs / 8; c++)
                BinaryPrimitives.WriteUInt32LittleEndian(qzeros.AsSpan((g * (outputs / 8) + c) * 4), Word(zeros, (long)g * outputs, 8 * c));
        return new PackedLinear(qweight, [inputs, outputs / 8], qzeros, [groups, outputs / 8], ScaleBytes(scales), [groups, outputs], null, null);
    }

    static byte[] ScaleBytes(Half[] scales)
    {
        var bytes = new byte[scales.Length * 2L];
        for (long i = 0; i < scales.Length; i++) BinaryPrimitives.WriteHalfLittleEndian(bytes.AsSpan((int)(i * 2)), scales[i]);
        return bytes;
    }

    /// <summary>The quantization_config block the writers put in config.json: AutoGPTQ's <c>to_dict()</c> (with
    /// checkpoint_format "gptq", i.e. v1) or AutoAWQ's <c>to_transformers_dict()</c>.</summary>
    public static void WriteConfig(System.Text.Json.Utf8JsonWriter w, Int4Settings s)
    {
        w.WriteStartObject("quantization_config");
        w.WriteNumber("bits", 4);
        w.WriteNumber("group_size", s.GroupSize);
        if (s.Method == Int4Method.Gptq)
        {
            w.WriteNumber("damp_percent", 0.01);
            w.WriteBoolean("desc_act", s.ActOrder);
            w.WriteBoolean("static_groups", false);
            w.WriteBoolean("sym", s.Symmetric);
            w.WriteBoolean("true_sequential", true);
            w.WriteNull("model_name_or_path");
            w.WriteString("model_file_base_name", "model");
            w.WriteString("quant_method", "gptq");
            w.WriteString("checkpoint_format", "gptq");
        }
        else
        {
            w.WriteNull("modules_to_not_convert");
            w.WriteString("quant_method", "awq");
            w.WriteString("version", "gemm");
            w.WriteBoolean("zero_point", true);
        }
        w.WriteEndObject();
    }
}
