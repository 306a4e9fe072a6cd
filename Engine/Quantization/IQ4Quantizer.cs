using Engine.Formats;

namespace Engine.Quantization;

/// <summary>
/// ggml's quantize_row_iq4_nl_impl as quantize_iq4_nl and quantize_iq4_xs run it (ntry = 7, what llama-quantize
/// writes, with or without importance weights). Each 32-value block gets the scale that fits the non-linear codebook
/// best among 15 tries; IQ4_XS then stores the block scales as 6-bit multiples of one f16 super-block scale.
/// Written with the C code's operation order, multiply and add kept separate (see docs/quantization.md: llama.cpp's
/// quantizers are not contracted to FMA), so the bytes are llama.cpp's.
/// </summary>
internal static class IQ4Quantizer
{
    const int Block = 32;
    const int Tries = 7;

    /// <summary>One row to IQ4_NL (18-byte blocks of 32) or IQ4_XS (136-byte super-blocks of 256).</summary>
    public static void QuantizeRow(GgmlType type, ReadOnlySpan<float> x, Span<byte> dst, ReadOnlySpan<float> importance)
    {
        int super = type == GgmlType.IQ4_XS ? 256 : Block;
        int blockBytes = type == GgmlType.IQ4_XS ? 136 : 18;
        if (x.Length % super != 0) throw new ArgumentException($"row of {x.Length} values is not whole blocks of {super}", nameof(x));
        if (dst.Length != x.Length / super * blockBytes) throw new ArgumentException($"dst holds {dst.Length} bytes, expected {x.Length / super * blockBytes}", nameof(dst));
        Span<byte> levels = stackalloc byte[super];
        Span<float> weight = stackalloc float[Block];
        Span<float> scales = stackalloc float[super / Block];
        for (int ib = 0, nb = x.Length / super; ib < nb; ib++)
            QuantizeSuperBlock(super, x.Slice(ib * super, super), dst.Slice(ib * blockBytes, blockBytes),
                importance.IsEmpty ? default : importance.Slice(ib * super, super), levels, weight, scales);
    }

    static void QuantizeSuperBlock(int super, ReadOnlySpan<float> x, Span<byte> dst, ReadOnlySpan<float> qw,
        Span<byte> levels, Span<float> weight, Span<float> scales)
    {
        var values = BlockIQ4_NL.KValues;
        bool xs = super > Block;
        // IQ4_NL: d, qs[16]. IQ4_XS: d, scales_h (u16), scales_l[4], qs[128].
        var q4 = xs ? dst.Slice(8, super / 2) : dst.Slice(2, super / 2);
        float sigma2 = 0;
        for (int j = 0; j < super; j++) sigma2 += x[j] * x[j];
        sigma2 *= 2f / super;
        q4.Clear();
        WriteHalf(dst, 0f);

        float maxScale = 0, amaxScale = 0;
        for (int ib = 0; ib < super / Block; ib++)
        {
            var xb = x.Slice(ib * Block, Block);
            var lb = levels.Slice(ib * Block, Block);
            if (!qw.IsEmpty)
            {
                var w = qw.Slice(ib * Block, Block);
                for (int j = 0; j < Block; j++) weight[j] = w[j] * MathF.Sqrt(sigma2 + xb[j] * xb[j]);
            }
            else
                for (int j = 0; j < Block; j++) weight[j] = xb[j] * xb[j];
            float amax = 0, max = 0;
            for (int j = 0; j < Block; j++)
            {
                float ax = MathF.Abs(xb[j]);
                if (ax > amax) { amax = ax; max = xb[j]; }
            }
            if (amax < QuantMath.GroupMaxEps) { scales[ib] = 0; continue; }
            float d = -max / values[0];
            float id = 1 / d;
            float sumqx = 0, sumq2 = 0;
            for (int j = 0; j < Block; j++)
            {
                float al = id * xb[j];
                int l = BestIndex(values, al);
                lb[j] = (byte)l;
                float q = values[l];
                float wj = weight[j];
                float wq = wj * q;
                sumqx += wq * xb[j];
                sumq2 += wq * q;
            }
            d = sumq2 > 0 ? sumqx / sumq2 : 0f;
            float best = d * sumqx;
            for (int itry = -Tries; itry <= Tries; itry++)
            {
                id = (itry + values[0]) / max;
                sumqx = sumq2 = 0;
                for (int j = 0; j < Block; j++)
                {
                    float al = id * xb[j];
                    int l = BestIndex(values, al);
                    float q = values[l];
                    float wq = weight[j] * q;
                    sumqx += wq * xb[j];
                    sumq2 += wq * q;
                }
                if (sumq2 > 0 && sumqx * sumqx > best * sumq2)
                {
                    d = sumqx / sumq2;
                    best = d * sumqx;
                }
            }
            scales[ib] = d;
            float absD = MathF.Abs(d);
            if (absD > amaxScale) { amaxScale = absD; maxScale = d; }
        }

        if (xs)
        {
            var scalesL = dst.Slice(4, super / 64);
            ushort scalesH = 0;
            float d = -maxScale / 32;
            WriteHalf(dst, d);
            float id = d != 0 ? 1 / d : 0f;
            for (int ib = 0; ib < super / Block; ib++)
            {
                int l = Math.Clamp(QuantMath.NearestInt(id * scales[ib]), -32, 31);
                float dl = d * l;
                float idl = dl != 0 ? 1 / dl : 0f;
                var lb = levels.Slice(ib * Block, Block);
                var xb = x.Slice(ib * Block, Block);
                for (int j = 0; j < Block; j++) lb[j] = (byte)BestIndex(values, idl * xb[j]);
                l += 32;
                byte lowBits = (byte)(l & 0xf);
                int highBits = l >> 4;
                if (ib % 2 == 0) scalesL[ib / 2] = lowBits;
                else scalesL[ib / 2] |= (byte)(lowBits << 4);
                scalesH |= (ushort)(highBits << (2 * (ib % 8)));
            }
            dst[2] = (byte)scalesH;
            dst[3] = (byte)(scalesH >> 8);
        }
        else
        {
            WriteHalf(dst, scales[0]);
            float id = scales[0] != 0 ? 1 / scales[0] : 0;
            for (int j = 0; j < super; j++) levels[j] = (byte)BestIndex(values, id * x[j]);
        }

        for (int i = 0; i < super / 32; i++)
            for (int j = 0; j < 16; j++)
                q4[16 * i + j] = (byte)(levels[32 * i + j] | (levels[32 * i + 16 + j] << 4));
    }

    static void WriteHalf(Span<byte> dst, float v)
    {
        ushort h = Fp16.FromSingle(v);
        dst[0] = (byte)h;
        dst[1] = (byte)(h >> 8);
    }

    /// <summary>best_index_int8: the codebook entry nearest to x (binary search; ties go up).</summary>
    static int BestIndex(ReadOnlySpan<sbyte> values, float x)
    {
        if (x <= values[0]) return 0;
        if (x >= values[^1]) return values.Length - 1;
        int ml = 0, mu = values.Length - 1;
        while (mu - ml > 1)
        {
            int mav = (ml + mu) / 2;
            if (x < values[mav]) mu = mav; else ml = mav;
        }
        return x - values[mu - 1] < values[mu] - x ? mu - 1 : mu;
    }
}
