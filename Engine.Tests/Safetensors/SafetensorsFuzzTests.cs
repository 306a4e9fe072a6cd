using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using Engine.Formats;
using Engine.Formats.Safetensors;
using Xunit.Abstractions;
using static Engine.Tests.Safetensors.SafetensorsBuilder;

namespace Engine.Tests.Safetensors;

/// <summary>Mutation fuzzing with fixed seeds and a time budget: whatever the bytes, the reader either accepts
/// them or throws <see cref="ModelFormatException"/> — never another exception — and allocates nothing in
/// proportion to sizes the file merely declares.</summary>
public class SafetensorsFuzzTests(ITestOutputHelper output)
{
    /// <summary>Per parse, beyond the input itself: the header is parsed in place, so only names, shapes and
    /// bookkeeping are allocated.</summary>
    const long AllocationAllowance = 4 << 20;
    static readonly TimeSpan BudgetPerStrategy = TimeSpan.FromSeconds(0.8);

    /// <summary>A richer seed than the corruption sample: metadata, several dtypes, a scalar, an empty tensor.</summary>
    static byte[] Seed() => new SafetensorsBuilder
        {
            Metadata = new() { ["format"] = "pt", ["note"] = "fuzz" },
        }
        .AddF32("model.embed_tokens.weight", [4, 2], 1, 2, 3, 4, 5, 6, 7, 8)
        .Add("model.norm.weight", "BF16", [2], [0x80, 0x3F, 0x00, 0x40])
        .Add("scalar", "I64", [], new byte[8])
        .Add("empty", "F16", [0, 3], [])
        .Add("mask", "BOOL", [3], [1, 0, 1])
        .Add("packed", "F4", [2, 2], [0x12, 0x34])
        .Build();

    /// <summary>Parses, reads every view, and checks the two promises; returns whether the input was accepted.</summary>
    static bool Check(byte[] bytes, string what)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        bool accepted;
        try
        {
            using var file = Parse(bytes);
            foreach (var t in file.Tensors)
            {
                // Touch every accepted extent: it must lie inside the input.
                var span = file.GetBytes(t.Name);
                if (span.Length > 0) _ = span[0] ^ span[^1];
                if (t.DType.ToGgml() is not null) _ = file.GetView(t.Name).Bytes.Length;
            }
            accepted = true;
        }
        catch (ModelFormatException)
        {
            accepted = false;
        }
        catch (Exception e)
        {
            throw new Xunit.Sdk.XunitException($"{what}: {e.GetType().Name} instead of ModelFormatException: {e}");
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        allocated.Should().BeLessThan(AllocationAllowance + 4L * bytes.Length, what);
        return accepted;
    }

    [Fact]
    public void Seed_is_accepted() => Check(Seed(), "seed").Should().BeTrue();

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Random_byte_flips(int seed)
    {
        var rng = new Random(seed);
        var original = Seed();
        int headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(original);
        int runs = 0, accepted = 0;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < BudgetPerStrategy / 3)
        {
            var bytes = (byte[])original.Clone();
            int flips = rng.Next(1, 5);
            for (int i = 0; i < flips; i++)
            {
                // Mostly in the header, where the structure is; sometimes anywhere.
                int at = rng.Next(4) == 0 ? rng.Next(bytes.Length) : rng.Next(headerEnd);
                bytes[at] = rng.Next(3) switch
                {
                    0 => (byte)(bytes[at] ^ (1 << rng.Next(8))),
                    1 => (byte)rng.Next(256),
                    _ => (byte)"{}[]\",:-0123456789e. \\"[rng.Next(22)],
                };
            }
            if (Check(bytes, $"seed {seed} run {runs}")) accepted++;
            runs++;
        }
        output.WriteLine($"seed {seed}: {runs} mutations, {accepted} accepted");
        runs.Should().BeGreaterThan(100);
    }

    [Fact]
    public void Header_length_values()
    {
        var original = Seed();
        long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(original);
        ulong[] values =
        [
            0, 1, 2, 7, 8, (ulong)n - 1, (ulong)n + 1, (ulong)original.Length - 8, (ulong)original.Length,
            ulong.MaxValue, (ulong)long.MaxValue, 1UL << 63, 1UL << 31, (1UL << 31) - 1, 1UL << 32, uint.MaxValue,
            100_000_000, 100_000_001,
        ];
        foreach (ulong value in values)
        {
            var bytes = (byte[])original.Clone();
            BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
            Check(bytes, $"header length {value}").Should().Be(value == (ulong)n, $"header length {value}");
        }
    }

    [Fact]
    public void Truncation_at_every_position()
    {
        var original = Seed();
        for (int length = 0; length < original.Length; length++)
            Check(original[..length], $"truncated to {length}").Should().BeFalse($"truncated to {length}");
    }

    [Fact]
    public void Random_json_splices()
    {
        // Replace a random slice of the header with random JSON-ish text, keeping the length prefix honest.
        string[] atoms = ["{", "}", "[", "]", ",", ":", "\"", "\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"F32\"",
            "\"__metadata__\"", "-1", "0", "4", "9223372036854775807", "18446744073709551616", "1e3", "null", "true", " "];
        var original = Seed();
        string header = Encoding.UTF8.GetString(original, 8, (int)BinaryPrimitives.ReadUInt64LittleEndian(original)).TrimEnd();
        var buffer = original[(8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(original))..];
        var rng = new Random(7);
        int runs = 0;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < BudgetPerStrategy)
        {
            int start = rng.Next(header.Length), length = rng.Next(Math.Min(12, header.Length - start) + 1);
            var text = new StringBuilder();
            for (int i = rng.Next(1, 4); i > 0; i--) text.Append(atoms[rng.Next(atoms.Length)]);
            string mutated = header[..start] + text + header[(start + length)..];
            Check(Assemble(mutated, buffer), $"splice run {runs}: {mutated}");
            runs++;
        }
        output.WriteLine($"{runs} splices");
    }
}
