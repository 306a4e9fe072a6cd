using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using Engine.Formats;
using Engine.Formats.Gguf;
using Xunit.Abstractions;

namespace Engine.Tests.Gguf;

/// <summary>Mutation fuzzing with fixed seeds and a time budget: every mutated file must either parse (and then hand out
/// only in-bounds views) or fail with <see cref="ModelFormatException"/>; anything else (IndexOutOfRange, Overflow,
/// OutOfMemory, ArgumentOutOfRange...) fails the test with the mutation that caused it. Each parse must also
/// allocate no more than a small multiple of the input (no allocation sized by a declared count).</summary>
public class GgufFuzzTests(ITestOutputHelper output)
{
    static readonly TimeSpan Budget = TimeSpan.FromSeconds(1.2); // per strategy: about 5 s in all

    /// <summary>Several metadata types (scalars, string, arrays of strings, floats, bools) and 3 tensors.</summary>
    static byte[] BaseFile(out RawGguf raw)
    {
        var spec = GgufSpec.Default()
            .Kv(GgufKeys.Alignment, GgufValueType.UInt32, w => w.U32(32))
            .Kv("llama.rope.freq_base", GgufValueType.Float32, w => w.F32(10000f))
            .Kv("llama.context_length", GgufValueType.UInt64, w => w.U64(4096))
            .Kv(GgufKeys.Scores, GgufValueType.Array, w => w.U32((uint)GgufValueType.Float32).U64(3).F32(0).F32(-1).F32(-2))
            .Kv(GgufKeys.AddBos, GgufValueType.Bool, w => w.U8(1))
            .Kv(GgufKeys.TokenTypes, GgufValueType.Array, w => w.U32((uint)GgufValueType.Int32).U64(3).U32(1).U32(1).U32(3))
            .Kv("general.name", GgufValueType.String, w => w.Str("fuzz 🦙"));
        return spec.Build(out raw);
    }

    sealed class Outcome
    {
        public int Parsed, Rejected;
        public readonly List<string> Failures = [];
        public readonly Dictionary<FormatErrorKind, int> Kinds = [];
    }

    /// <summary>Parses one candidate; records a failure (with <paramref name="what"/>) for any exception that is not a
    /// ModelFormatException and for an allocation over input * 4 + 1 MiB.</summary>
    static void Check(byte[] bytes, string what, Outcome outcome)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        try
        {
            using var f = GgufFile.Parse(bytes);
            // A file that parses must hand out views inside the buffer, and its metadata must format.
            foreach (var t in f.Tensors)
            {
                var view = f.GetTensor(t.Name);
                if (view.ByteSize > 0 && view.ByteSize <= int.MaxValue)
                {
                    var span = view.Bytes;
                    _ = span[0] + span[^1];
                }
            }
            foreach (var kv in f.MetadataList) _ = kv.Value.ToString();
            outcome.Parsed++;
        }
        catch (ModelFormatException e)
        {
            outcome.Rejected++;
            outcome.Kinds[e.Kind] = outcome.Kinds.GetValueOrDefault(e.Kind) + 1;
        }
        catch (Exception e)
        {
            outcome.Failures.Add($"{what}: {e.GetType().Name}: {e.Message}");
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        long cap = bytes.LongLength * 4 + (1 << 20);
        if (allocated > cap) outcome.Failures.Add($"{what}: allocated {allocated} bytes parsing {bytes.Length} (cap {cap})");
    }

    void Report(string strategy, Outcome o, Stopwatch sw)
    {
        output.WriteLine($"{strategy}: {o.Parsed} parsed, {o.Rejected} rejected in {sw.ElapsedMilliseconds} ms; kinds: " +
            string.Join(", ", o.Kinds.OrderByDescending(k => k.Value).Select(k => $"{k.Key}={k.Value}")));
        foreach (var f in o.Failures.Take(20)) output.WriteLine("FAIL " + f);
        o.Failures.Should().BeEmpty($"{strategy}: every mutation must parse or throw ModelFormatException within the allocation cap; first: {o.Failures.FirstOrDefault()}");
    }

    [Fact]
    public void Random_byte_flips()
    {
        var original = BaseFile(out _);
        using (GgufFile.Parse(original)) { } // the base must be valid
        var outcome = new Outcome();
        var sw = Stopwatch.StartNew();
        int iterations = 0;
        for (int seed = 1; sw.Elapsed < Budget && seed <= 200_000; seed++)
        {
            var rng = new Random(seed);
            var bytes = (byte[])original.Clone();
            int flips = 1 + rng.Next(4);
            var sb = new StringBuilder($"seed {seed}:");
            for (int k = 0; k < flips; k++)
            {
                // Mostly the header, where the structure is; sometimes anywhere.
                int at = rng.Next(4) == 0 ? rng.Next(bytes.Length) : rng.Next(Math.Min(bytes.Length, 400));
                byte v = rng.Next(3) switch { 0 => (byte)(bytes[at] ^ (1 << rng.Next(8))), 1 => 0xFF, _ => (byte)rng.Next(256) };
                sb.Append($" [{at}]={v:x2}");
                bytes[at] = v;
            }
            Check(bytes, sb.ToString(), outcome);
            iterations++;
        }
        Report($"byte flips ({iterations} files)", outcome, sw);
        iterations.Should().BeGreaterThan(500);
    }

    [Fact]
    public void Special_values_at_every_field_boundary_and_aligned_position()
    {
        var original = BaseFile(out var raw);
        var positions = new SortedSet<long>(raw.Boundaries.Where(p => p < original.Length));
        long headerEnd;
        using (var f = GgufFile.Parse(original)) headerEnd = f.DataOffset;
        for (long p = 0; p < headerEnd; p += 8) positions.Add(p);
        for (long p = 4; p < headerEnd; p += 8) positions.Add(p);

        ulong[] values = [0, ulong.MaxValue, 1UL << 31, 1UL << 63, 1, 1UL << 32, 64];
        var outcome = new Outcome();
        var sw = Stopwatch.StartNew();
        int count = 0;
        foreach (var p in positions)
        {
            if (sw.Elapsed > Budget * 2) break;
            foreach (var v in values)
            {
                if (p + 8 <= original.Length)
                {
                    var b = (byte[])original.Clone();
                    BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan((int)p), v);
                    Check(b, $"u64 {v:x} at {p}", outcome);
                    count++;
                }
                if (p + 4 <= original.Length)
                {
                    var b = (byte[])original.Clone();
                    BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan((int)p), (uint)(v > uint.MaxValue ? v >> 32 : v));
                    Check(b, $"u32 {(uint)(v > uint.MaxValue ? v >> 32 : v):x} at {p}", outcome);
                    count++;
                }
            }
        }
        Report($"special values ({count} files over {positions.Count} positions)", outcome, sw);
        positions.Count.Should().BeGreaterThan(50);
    }

    [Fact]
    public void Truncation_at_every_field_boundary_and_a_sample_of_other_positions()
    {
        var original = BaseFile(out var raw);
        var cuts = new SortedSet<long>(raw.Boundaries.Where(p => p < original.Length));
        for (long p = 0; p < original.Length; p += 3) cuts.Add(p);
        var outcome = new Outcome();
        var sw = Stopwatch.StartNew();
        foreach (var cut in cuts)
        {
            Check(original[..(int)cut], $"truncated to {cut} of {original.Length}", outcome);
            if (sw.Elapsed > Budget) break;
        }
        Report($"truncations ({cuts.Count})", outcome, sw);
        // Every cut before the end of the last tensor removes bytes a field or tensor needs; cuts in the trailing padding do not.
        long lastEnd;
        using (var f = GgufFile.Parse(original)) lastEnd = f.Tensors.Max(t => f.GetTensor(t.Name).FileOffset + t.ByteSize);
        outcome.Parsed.Should().Be(cuts.Count(c => c >= lastEnd), "only cuts inside the trailing padding may still parse");
    }

    [Fact]
    public void Fuzzing_a_writer_file_with_every_metadata_type()
    {
        // A richer file (every value type, empty arrays, unicode) from the writer: flips and truncations.
        var w = new GgufWriter()
            .AddMetadata("a.u8", (byte)1).AddMetadata("a.i8", (sbyte)-1).AddMetadata("a.u16", (ushort)2).AddMetadata("a.i16", (short)-2)
            .AddMetadata("a.u32", 3u).AddMetadata("a.i32", -3).AddMetadata("a.u64", 4UL).AddMetadata("a.i64", -4L)
            .AddMetadata("a.f32", 1.5f).AddMetadata("a.f64", 2.5).AddMetadata("a.bool", true).AddMetadata("a.str", "ü")
            .AddMetadata("a.au8", new byte[] { 1, 2 }).AddMetadata("a.ai64", new long[] { -1 }).AddMetadata("a.af64", new[] { 0.5 })
            .AddMetadata("a.abool", new[] { true, false }).AddMetadata("a.astr", new[] { "x", "" }).AddMetadata("a.empty", Array.Empty<int>())
            .AddTensor("t0", GgmlType.Q4_K, [256, 1], new byte[144]).AddTensor("t1", GgmlType.F16, [3], new byte[6]);
        var original = w.ToArray();
        var outcome = new Outcome();
        var sw = Stopwatch.StartNew();
        for (int cut = 0; cut < original.Length; cut++) Check(original[..cut], $"writer file truncated to {cut}", outcome);
        for (int seed = 1; sw.Elapsed < Budget; seed++)
        {
            var rng = new Random(seed);
            var bytes = (byte[])original.Clone();
            int at = rng.Next(Math.Min(bytes.Length, 600));
            bytes[at] = (byte)rng.Next(256);
            Check(bytes, $"writer file seed {seed}: [{at}]={bytes[at]:x2}", outcome);
        }
        Report("writer file", outcome, sw);
    }

    // ------------------------------------------------------------ amplification

    /// <summary>A file whose body is zeros, declaring as many entries as the bytes could hold. The parse fails at the
    /// first entry (an empty key / name), so it must not have allocated anything sized by the declared count.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Declared_counts_do_not_presize_collections(bool metadata)
    {
        const int body = 8 << 20;
        var bytes = new byte[24 + body];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, GgufFile.Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), 3);
        ulong kv = metadata ? (ulong)(body / GgufLimits.MinBytesPerKeyValue) : 0;
        ulong tensors = metadata ? 0 : (ulong)(body / GgufLimits.MinBytesPerTensorInfo);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(8), tensors);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(16), kv);

        long before = GC.GetAllocatedBytesForCurrentThread();
        var act = () => GgufFile.Parse(bytes).Dispose();
        act.Should().Throw<ModelFormatException>().Which.Kind.Should().Be(FormatErrorKind.InvalidName);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        output.WriteLine($"allocated {allocated} bytes for {(metadata ? kv : tensors)} declared entries");
        allocated.Should().BeLessThan(1 << 20, "collections must grow with what is read, not be sized by what is declared");
    }
}
