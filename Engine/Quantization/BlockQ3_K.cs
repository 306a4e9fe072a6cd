using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Formats;
using static Engine.Quantization.QuantMath;

namespace Engine.Quantization;

/// <summary>block_q3_K: 256 3-bit quants in 16 sub-blocks of 16, each with a 6-bit scale (packed into 12 bytes,
/// stored +32); value = d * (scale - 32) * q with q in [-4, 3]. The low 2 bits are packed like Q2_K; the third
/// bit of element 32c + l (c = 0..7, l &lt; 32) is bit c of hmask[l], and a clear bit means q - 4.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal unsafe struct BlockQ3_K
{
    public fixed byte HMask[QK_K / 8];
    public fixed byte Qs[QK_K / 4];
    public fixed byte Scales[12];
    public Half D;

    /// <summary>The 16 scales minus 32, in sub-block order: bytes 0..7 keep their low nibbles in scales[0..8),
    /// 8..15 their high nibbles, and bits 4..5 of every scale sit in scales[8..12) (the aux shuffle of ggml).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<sbyte> UnpackScales(byte* packed)
    {
        const uint kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
        uint a0 = Unsafe.ReadUnaligned<uint>(packed);
        uint a1 = Unsafe.ReadUnaligned<uint>(packed + 4);
        uint a2 = Unsafe.ReadUnaligned<uint>(packed + 8);
        var scales = Vector128.Create(
            (a0 & kmask2) | (((a2 >> 0) & kmask1) << 4),
            (a1 & kmask2) | (((a2 >> 2) & kmask1) << 4),
            ((a0 >> 4) & kmask2) | (((a2 >> 4) & kmask1) << 4),
            ((a1 >> 4) & kmask2) | (((a2 >> 6) & kmask1) << 4));
        return scales.AsSByte() - Vector128.Create((sbyte)32);
    }
}

internal sealed unsafe class Q3_KFormat : RowFormat, IWeightQuantizer
{
    public static readonly Q3_KFormat Instance = new();
    Q3_KFormat() : base(GgmlType.Q3_K, GgmlType.Q8_K) { }

    /// <summary>quantize_row_q3_K_ref.</summary>
    public void QuantizeRowReference(ReadOnlySpan<float> src, Span<byte> dst)
    {
        if (src.Length % QK_K != 0 || dst.Length < RowBytes(src.Length)) throw new ArgumentException("bad row length");
        sbyte* L = stackalloc sbyte[QK_K];
        float* scales = stackalloc float[QK_K / 16];
        fixed (float* xp = src) fixed (byte* yp = dst)
        {
            float* x = xp;
            var y = (BlockQ3_K*)yp;
            for (int i = 0; i < src.Length / QK_K; i++, x += QK_K)
            {
                float maxScale = 0, amax = 0;
                for (int j = 0; j < QK_K / 16; j++)
                {
                    scales[j] = MakeQ3Quants(16, 4, x + 16 * j, L + 16 * j, true);
                    float scale = MathF.Abs(scales[j]);
                    if (scale > amax) { amax = scale; maxScale = scales[j]; }
                }

                byte* packed = y[i].Scales;
                for (int j = 0; j < 12; j++) packed[j] = 0;
                if (maxScale != 0)
                {
                    float iscale = -32f / maxScale;
                    for (int j = 0; j < QK_K / 16; j++)
                    {
                        // int8_t in ggml: nearest_int is within [-32, 32] here, so the narrowing is exact.
                        int l = Math.Max(-32, Math.Min(31, (int)(sbyte)NearestInt(iscale * scales[j]))) + 32;
                        if (j < 8) packed[j] = (byte)(l & 0xF);
                        else packed[j - 8] |= (byte)((l & 0xF) << 4);
                        packed[j % 4 + 8] |= (byte)((l >> 4) << (2 * (j / 4)));
                    }
                    y[i].D = (Half)(1 / iscale);
                }
                else
                {
                    y[i].D = (Half)0f;
                }

                for (int j = 0; j < QK_K / 16; j++)
                {
                    int sc = j < 8 ? packed[j] & 0xF : packed[j - 8] >> 4;
                    sc = (sc | (((packed[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
                    float d = Fp16.ToSingle(y[i].D) * sc;
                    if (d == 0) continue;
                    for (int ii = 0; ii < 16; ii++)
                        L[16 * j + ii] = (sbyte)(Math.Max(-4, Math.Min(3, NearestInt(x[16 * j + ii] / d))) + 4);
                }

                PackLevels(L, &y[i]);
            }
        }
    }

    /// <summary>quantize_row_q3_K_impl: each sub-block of 16 by make_qx_quants weighted by
    /// importance * sqrt(sigma2 + x^2) (sigma2 twice the super-block's mean square), the 16 scales by make_qx_quants
    /// weighted by each sub-block's total weight, then every value requantized with the stored scales.</summary>
    public void QuantizeRowWeighted(ReadOnlySpan<float> src, Span<byte> dst, ReadOnlySpan<float> importance)
    {
        WeightedRow.Check(src, dst, importance, QK_K, RowBytes(src.Length));
        sbyte* L = stackalloc sbyte[QK_K];
        float* scales = stackalloc float[QK_K / 16];
        float* weight = stackalloc float[16];
        float* sw = stackalloc float[QK_K / 16];
        sbyte* Ls = stackalloc sbyte[QK_K / 16];
        fixed (float* xp = src) fixed (float* qwp = importance) fixed (byte* yp = dst)
        {
            float* x = xp;
            var y = (BlockQ3_K*)yp;
            for (int i = 0; i < src.Length / QK_K; i++, x += QK_K)
            {
                float sumx2 = 0;
                for (int j = 0; j < QK_K; j++) sumx2 += x[j] * x[j];
                float sigma2 = 2 * sumx2 / QK_K;
                for (int j = 0; j < QK_K / 16; j++)
                {
                    WeightedRow.Weights(x + 16 * j, qwp + QK_K * i + 16 * j, sigma2, weight, 16);
                    float sumw = 0;
                    for (int l = 0; l < 16; l++) sumw += weight[l];
                    sw[j] = sumw;
                    scales[j] = MakeQxQuants(16, 4, x + 16 * j, L + 16 * j, 1, weight);
                }

                byte* packed = y[i].Scales;
                for (int j = 0; j < 12; j++) packed[j] = 0;
                float dBlock = MakeQxQuants(QK_K / 16, 32, scales, Ls, 1, sw);
                for (int j = 0; j < QK_K / 16; j++)
                {
                    int l = Ls[j];
                    if (j < 8) packed[j] = (byte)(l & 0xF);
                    else packed[j - 8] |= (byte)((l & 0xF) << 4);
                    l >>= 4;
                    packed[j % 4 + 8] |= (byte)(l << (2 * (j / 4)));
                }
                y[i].D = (Half)dBlock;

                for (int j = 0; j < QK_K / 16; j++)
                {
                    int sc = j < 8 ? packed[j] & 0xF : packed[j - 8] >> 4;
                    sc = (sc | (((packed[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
                    float d = Fp16.ToSingle(y[i].D) * sc;
                    if (d == 0) continue;
                    for (int ii = 0; ii < 16; ii++)
                        L[16 * j + ii] = (sbyte)(Math.Max(-4, Math.Min(3, NearestInt(x[16 * j + ii] / d))) + 4);
                }
                PackLevels(L, &y[i]);
            }
        }
    }

    /// <summary>Stores 256 levels in [0, 7] (L is consumed): the high bit of L[j] goes to bit j / 32 of hmask[j % 32],
    /// what is left is the 2-bit part.</summary>
    static void PackLevels(sbyte* L, BlockQ3_K* y)
    {
        byte* hmask = y->HMask;
        for (int j = 0; j < QK_K / 8; j++) hmask[j] = 0;
        for (int j = 0; j < QK_K; j++)
            if (L[j] > 3)
            {
                hmask[j % 32] |= (byte)(1 << (j / 32));
                L[j] -= 4;
            }
        Q2_KFormat.PackTwoBitQuants((byte*)L, y->Qs);
    }

    private protected override void QuantizeActivationsCore(float* x, byte* dst, int k) => BlockQ8_K.Quantize(x, (BlockQ8_K*)dst, k);

    private protected override void DequantizeReferenceCore(byte* row, float* y, int k)
    {
        var x = (BlockQ3_K*)row;
        sbyte* scales = stackalloc sbyte[16];
        for (int i = 0; i < k / QK_K; i++)
        {
            float dAll = Fp16.ToSingle(x[i].D);
            BlockQ3_K.UnpackScales(x[i].Scales).Store(scales);
            byte* q = x[i].Qs;
            byte* hm = x[i].HMask;
            int m = 1, s = 0;
            for (int n = 0; n < QK_K; n += 128, q += 32)
                for (int shift = 0; shift < 8; shift += 2, m <<= 1)
                {
                    float dl = dAll * scales[s++];
                    for (int l = 0; l < 16; l++) *y++ = dl * (((q[l] >> shift) & 3) - ((hm[l] & m) != 0 ? 0 : 4));
                    dl = dAll * scales[s++];
                    for (int l = 16; l < 32; l++) *y++ = dl * (((q[l] >> shift) & 3) - ((hm[l] & m) != 0 ? 0 : 4));
                }
        }
    }

    /// <summary>The 32 signed quants (-4..3) of group c (bit c of hmask, bit pair c % 4 of the half's qs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<sbyte> Quants(Vector256<ushort> lowBits, Vector256<byte> hmask, int c)
    {
        var low = Vector256.ShiftRightLogical(lowBits, 2 * (c % 4)).AsByte() & Vector256.Create((byte)3);
        var high = Vector256.ShiftLeft(Vector256.ShiftRightLogical(hmask.AsUInt16(), c).AsByte() & Vector256.Create((byte)1), 2);
        return (low | high).AsSByte() - Vector256.Create((sbyte)4);
    }

    private protected override void DequantizeCore(byte* row, float* y, int k)
    {
        if (!Avx2.IsSupported) { DequantizeReferenceCore(row, y, k); return; }
        var x = (BlockQ3_K*)row;
        sbyte* scales = stackalloc sbyte[16];
        for (int i = 0; i < k / QK_K; i++)
        {
            float dAll = Fp16.ToSingle(x[i].D);
            BlockQ3_K.UnpackScales(x[i].Scales).Store(scales);
            var hmask = Vector256.Load(x[i].HMask);
            for (int c = 0; c < 8; c++, y += 32)
            {
                var lowBits = Vector256.Load(x[i].Qs + 32 * (c / 4)).AsUInt16();
                var q = Quants(lowBits, hmask, c);
                var (s0, s1) = Vector256.Widen(q);
                var (i0, i1) = Vector256.Widen(s0);
                var (i2, i3) = Vector256.Widen(s1);
                var dA = Vector256.Create(dAll * scales[2 * c]);
                var dB = Vector256.Create(dAll * scales[2 * c + 1]);
                (Vector256.ConvertToSingle(i0) * dA).Store(y);
                (Vector256.ConvertToSingle(i1) * dA).Store(y + 8);
                (Vector256.ConvertToSingle(i2) * dB).Store(y + 16);
                (Vector256.ConvertToSingle(i3) * dB).Store(y + 24);
            }
        }
    }

    /// <summary>ggml_vec_dot_q3_K_q8_K_generic, including its 8 float lane sums.</summary>
    private protected override float DotReferenceCore(byte* row, byte* act, int k)
    {
        var x = (BlockQ3_K*)row;
        var y = (BlockQ8_K*)act;
        sbyte* aux8 = stackalloc sbyte[QK_K];
        sbyte* scales = stackalloc sbyte[16];
        float* sums = stackalloc float[8];
        int* aux32 = stackalloc int[8];
        for (int l = 0; l < 8; l++) sums[l] = 0;
        for (int i = 0; i < k / QK_K; i++)
        {
            byte* q3 = x[i].Qs;
            byte* hm = x[i].HMask;
            sbyte* q8 = y[i].Qs;
            for (int l = 0; l < 8; l++) aux32[l] = 0;
            sbyte* a = aux8;
            int m = 1;
            for (int j = 0; j < QK_K; j += 128, q3 += 32)
                for (int shift = 0; shift < 8; shift += 2, m <<= 1, a += 32)
                    for (int l = 0; l < 32; l++)
                        a[l] = (sbyte)(((q3[l] >> shift) & 3) - ((hm[l] & m) != 0 ? 0 : 4));
            BlockQ3_K.UnpackScales(x[i].Scales).Store(scales);
            a = aux8;
            for (int j = 0; j < QK_K / 16; j++)
            {
                int scale = scales[j];
                for (int g = 0; g < 2; g++, q8 += 8, a += 8)
                    for (int l = 0; l < 8; l++) aux32[l] += scale * (short)(q8[l] * a[l]);
            }
            float d = Fp16.ToSingle(x[i].D) * y[i].D;
            for (int l = 0; l < 8; l++) sums[l] += d * aux32[l];
        }
        float sumf = 0;
        for (int l = 0; l < 8; l++) sumf += sums[l];
        return sumf;
    }

    /// <summary>ggml_vec_dot_q3_K_q8_K's AVX2 order: per block 8 int32 lanes (4 adjacent elements of each
    /// 32-byte group), one FMA with d, one horizontal sum at the end.</summary>
    private protected override float DotCore(byte* row, byte* act, int k)
    {
        if (!Simd.Avx2Fma) return Simd.V128 ? DotV128(row, act, k) : DotReferenceCore(row, act, k);
        var x = (BlockQ3_K*)row;
        var y = (BlockQ8_K*)act;
        var shuffle0 = ScaleShuffle(0);
        var shuffle1 = ScaleShuffle(1);
        var shuffle2 = ScaleShuffle(2);
        var shuffle3 = ScaleShuffle(3);
        Vector256<float> acc = default;
        for (int i = 0; i < k / QK_K; i++)
        {
            float d = y[i].D * Fp16.ToSingle(x[i].D);
            // Each half's 8 int16 scales in both 128-bit lanes, so an in-lane byte shuffle can pick scale 2g for
            // the low lane (elements 0..15 of group g) and 2g + 1 for the high lane.
            var scales16 = Avx2.ConvertToVector256Int16(BlockQ3_K.UnpackScales(x[i].Scales));
            var hmask = Vector256.Load(x[i].HMask);
            sbyte* q8 = y[i].Qs;
            Vector256<int> sumi = default;
            for (int half = 0; half < 2; half++, q8 += 128)
            {
                var halfScales = (half == 0 ? Avx2.Permute2x128(scales16, scales16, 0x00) : Avx2.Permute2x128(scales16, scales16, 0x11)).AsByte();
                var lowBits = Vector256.Load(x[i].Qs + 32 * half).AsUInt16();
                sumi += Group(Quants(lowBits, hmask, 4 * half + 0), q8, Avx2.Shuffle(halfScales, shuffle0))
                      + Group(Quants(lowBits, hmask, 4 * half + 1), q8 + 32, Avx2.Shuffle(halfScales, shuffle1))
                      + Group(Quants(lowBits, hmask, 4 * half + 2), q8 + 64, Avx2.Shuffle(halfScales, shuffle2))
                      + Group(Quants(lowBits, hmask, 4 * half + 3), q8 + 96, Avx2.Shuffle(halfScales, shuffle3));
            }
            acc = Fma.MultiplyAdd(Vector256.Create(d), Avx.ConvertToVector256Single(sumi), acc);
        }
        return Simd.HSum(acc);

        // 32 weights in [-4, 3] against 32 activations: the sign trick puts |q| <= 4 on pmaddubsw's unsigned side.
        static Vector256<int> Group(Vector256<sbyte> q, sbyte* q8, Vector256<byte> scale)
        {
            var p16 = Avx2.MultiplyAddAdjacent(Avx2.Abs(q), Avx2.Sign(Vector256.Load(q8), q));
            return Avx2.MultiplyAddAdjacent(p16, scale.AsInt16());
        }
    }

    /// <summary>The portable dot (no AVX2): per super-block the reference's integer sum(scale * q * q8) as int32
    /// lanes, then d * float(lanes). |pair sum * scale| &lt;= 2 * 4 * 127 * 32 fits int16, so each 16-element
    /// sub-block takes its scale with an int16 multiply before widening.</summary>
    static float DotV128(byte* row, byte* act, int k)
    {
        var x = (BlockQ3_K*)row;
        var y = (BlockQ8_K*)act;
        var m3 = Vector128.Create((byte)3);
        var b2 = Vector128.Create((byte)4);
        sbyte* scales = stackalloc sbyte[16];
        Vector128<float> acc = default;
        for (int i = 0; i < k / QK_K; i++)
        {
            BlockQ3_K.UnpackScales(x[i].Scales).Store(scales);
            // Bit c of hmask[l] is the third bit of element 32c + l: shifted down one per group, then bit 0 of
            // every byte moved to bit 2.
            var h0 = Vector128.Load(x[i].HMask).AsUInt16();
            var h1 = Vector128.Load(x[i].HMask + 16).AsUInt16();
            sbyte* sc = scales;
            sbyte* q8 = y[i].Qs;
            Vector128<int> sumi = default;
            for (int half = 0; half < 2; half++)
            {
                var l0 = Vector128.Load(x[i].Qs + 32 * half).AsUInt16();
                var l1 = Vector128.Load(x[i].Qs + 32 * half + 16).AsUInt16();
                for (int g = 0; g < 4; g++, sc += 2, q8 += 32, l0 >>= 2, l1 >>= 2, h0 >>= 1, h1 >>= 1)
                {
                    var q0 = ((l0.AsByte() & m3) | ((h0 << 2).AsByte() & b2)) - b2;
                    var q1 = ((l1.AsByte() & m3) | ((h1 << 2).AsByte() & b2)) - b2;
                    sumi += V128Dot.AddPairs(V128Dot.PairSumsSigned(q0.AsSByte(), q8) * Vector128.Create((short)sc[0]))
                          + V128Dot.AddPairs(V128Dot.PairSumsSigned(q1.AsSByte(), q8 + 16) * Vector128.Create((short)sc[1]));
                }
            }
            acc += Vector128.Create(Fp16.ToSingle(x[i].D) * y[i].D) * Vector128.ConvertToSingle(sumi);
        }
        return Vector128.Sum(acc);
    }

    /// <summary>Byte shuffle selecting int16 scale 2g in the low 128-bit lane and 2g + 1 in the high lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<byte> ScaleShuffle(int g)
    {
        byte lo = (byte)(4 * g), hi = (byte)(4 * g + 2);
        var low = Vector128.Create((ushort)(lo | (lo + 1) << 8)).AsByte();
        var high = Vector128.Create((ushort)(hi | (hi + 1) << 8)).AsByte();
        return Vector256.Create(low, high);
    }
}
