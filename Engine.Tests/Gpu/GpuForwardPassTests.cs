using Engine.Backends;
using System.Diagnostics;
using Engine.Gpu;
using Engine.Models;
using Engine.Tests.Models;
using Engine.Tests.Support;
using Xunit.Abstractions;

namespace Engine.Tests.Gpu;

/// <summary>Whole forward passes on the GPU backend against llama.cpp's golden logits and greedy tokens, with
/// the tolerances of the CPU backend's fixture tests (FixtureGoldenTests: F32 max|diff| 1e-3, F16 2e-2,
/// top token equal at every position) except BF16 (6e-2, see <see cref="MaxAbsDiff"/>). The prompt runs once
/// as one batch (every row of logits compared) and the greedy continuation reuses its KV cache: 8 tokens, or
/// all 16 for F32 on a real device (ENGINE_GPU_TEST_DEVICE). On the CPU simulator, where every group barrier is
/// an OS-level rendezvous, each fixture takes 30-50 s on 2 cores, so only three are run.</summary>
[Collection(GpuCollection.Name)]
public class GpuForwardPassTests(GpuTestDevice device, ITestOutputHelper output)
{
    const int SimulatorGreedyTokens = 8;

    [Theory]
    [InlineData("fx-llama-F32")]
    [InlineData("fx-llama-F16")]
    [InlineData("fx-qwen3-BF16")] // per-head q/k RMSNorm, NeoX RoPE
    [InlineData("fx-qwen3moe-F16")] // router, top-k and the expert matmuls on the device
    public void Logits_and_greedy_tokens_match_llama_cpp(string name)
    {
        var clock = Stopwatch.StartNew();
        using var model = OpenOnDevice(name, out var golden);
        // Half-precision greedy runs may drift apart after 8 tokens (as on the CPU backend); F32 ones may not.
        int greedy = device.IsRealDevice && name.EndsWith("F32") ? golden.GreedyTokens.Length : SimulatorGreedyTokens;
        CheckPromptAndGreedy(model.Model, golden, MaxAbsDiff(name), greedy);
        output.WriteLine($"{name} on {device.ModelDevice.Description}: {clock.Elapsed.TotalSeconds:F1} s");
    }

    /// <summary>Quantized weights on the device kernels (Engine.Gpu/Kernels/Quantized). These multiply the float
    /// activations, while llama.cpp (on its CPU, which made the goldens, and in its CUDA kernels) first quantizes
    /// them to 8 bits, so the logits differ by the activation rounding: measured NMSE 3.8e-4 (Q8_0), 8.2e-4 (Q4_0)
    /// against the fixtures' 5e-4 budget for quantized CPU backends (and 6e-4 to 1e-3 for any Q4_0 computation with
    /// float activations, measured on the CPU). The bound here is NMSE 1e-3 and the same top token at 21 or more
    /// of the 24 positions; the first greedy token (the last position's top token) is reported, not required,
    /// because the activation rounding flips near ties there (fx-qwen2-Q4_0: 470 against 35). In a
    /// mixture-of-experts model that rounding also flips near-tied router choices, which moves whole expert
    /// outputs (NMSE 2.5e-2 on fx-qwen3moe-Q8_0), so that case gets NMSE 5e-2 with the same token check; the
    /// routing itself is checked on fx-qwen3moe-F16 above (max|diff| 8.1e-3, NMSE 7.9e-7).</summary>
    [Theory]
    [InlineData("fx-llama-Q8_0", 1e-3)]
    [InlineData("fx-qwen2-Q4_0", 1e-3)] // q/k/v biases
    [InlineData("fx-llama-Q4_0", 1e-3)]
    [InlineData("fx-qwen3-Q4_0", 1e-3)]
    [InlineData("fx-qwen2-Q8_0", 1e-3)]
    [InlineData("fx-qwen3moe-Q8_0", 5e-2)] // experts chosen from quantized-weight router inputs
    public void Quantized_models_match_llama_cpp(string name, double maxNmse)
    {
        var clock = Stopwatch.StartNew();
        using var model = OpenOnDevice(name, out var golden);
        using var cache = model.Model.CreateCache(golden.Rows);
        var logits = new float[golden.Rows * golden.Vocab];
        model.Model.Forward(golden.Tokens, 0, cache, logits);
        double nmse = LogitCompare.Nmse(logits, golden.Logits);
        int sameTop = 0;
        for (int i = 0; i < golden.Rows; i++)
            if (LogitCompare.Argmax(logits.AsSpan(i * golden.Vocab, golden.Vocab)) == LogitCompare.Argmax(golden.Row(i))) sameTop++;
        int firstGreedy = LogitCompare.Argmax(logits.AsSpan((golden.Rows - 1) * golden.Vocab, golden.Vocab));
        string report = $"{name} on {device.ModelDevice.Description}: NMSE {nmse:E2}, top token equal at {sameTop}/{golden.Rows}, first greedy {firstGreedy} (llama.cpp {golden.GreedyTokens[0]}), {clock.Elapsed.TotalSeconds:F1} s";
        output.WriteLine(report);
        nmse.Should().BeLessThanOrEqualTo(maxNmse, report);
        sameTop.Should().BeGreaterThanOrEqualTo(21, report);
    }

    /// <summary>The rule for the device: a step copies two things in, its token ids and its batch (each row's
    /// position, slot and sequence, and the block tables as far as the rows reach: the paged KV cache is addressed
    /// through them on the device), and the logits out; nothing else crosses between host and device: no router
    /// scores or chosen experts (routing, top-k, the expert matmuls and their weighted sum all stay on the device),
    /// no shared-expert gate (qwen2moe), and the batch once per step, not once per layer. The whole prompt, a batch,
    /// may not copy more either.</summary>
    [Theory]
    [InlineData("fx-llama-F32")]
    [InlineData("fx-qwen3moe-Q8_0")] // 8 experts, 2 per token
    [InlineData("fx-qwen2moe-Q8_0")] // plus a shared expert behind a sigmoid gate
    public void A_step_copies_only_its_batch_in_and_the_logits_out(string name)
    {
        using var model = OpenOnDevice(name, out var golden);
        var transfers = ((GpuBackend)model.Model.Backend).HostTransfers;
        using var cache = model.Model.CreateCache(golden.Rows + 1);
        var logits = new float[golden.Vocab];
        // One sequence of `rows` rows whose last position is `last`: 4 ints per row (token, position, slot, sequence),
        // its table's start, and the table's blocks up to the last position's.
        static int BatchBytes(int rows, int last) => (4 * rows + 1 + last / Llama.DefaultBlockTokens + 1) * sizeof(int);

        var before = transfers.Snapshot();
        model.Model.Forward(golden.Tokens, 0, cache, logits);
        (transfers.Snapshot() - before).Should().Be(new HostTransferSnapshot(1, BatchBytes(golden.Rows, golden.Rows - 1), 1, golden.Vocab * sizeof(float)),
            "a prompt sends its batch (token ids included) once and reads back only the last row's logits");

        before = transfers.Snapshot();
        model.Model.Forward([LogitCompare.Argmax(logits)], golden.Rows, cache, logits);
        (transfers.Snapshot() - before).Should().Be(new HostTransferSnapshot(1, BatchBytes(1, golden.Rows), 1, golden.Vocab * sizeof(float)),
            "a decode step sends its one-row batch (its token id included) and reads back the logits, nothing else");
    }

    /// <summary>Opens fixture `name` (in the repository or ../shared/fixtures) on the test device, with its golden case.</summary>
    LoadedModel OpenOnDevice(string name, out GoldenCase golden)
    {
        var folder = FixtureGoldenTests.FixtureFolder(name) ?? throw new FileNotFoundException(name);
        var options = new ModelOptions { BackendFactory = (_, _) => new GpuBackend(device.ModelDevice, ownsDevice: false) };
        var model = LoadedModel.Open(Path.Combine(folder, name + ".gguf"), options);
        model.Model.Backend.Should().BeOfType<GpuBackend>();
        golden = GoldenCase.LoadFixture(folder, name);
        return model;
    }

    /// <summary>The CPU backend's bounds, except BF16: llama.cpp's CPU reference (the golden logits) rounds the
    /// activations to BF16 before every BF16 matmul, as the CPU backend does, while the GPU keeps them float32;
    /// on fx-qwen3-BF16 that alone moves logits by up to ~5e-2 (top tokens and greedy tokens unchanged).</summary>
    static double MaxAbsDiff(string name) => name.EndsWith("F32") ? 1e-3 : name.EndsWith("BF16") ? 6e-2 : 2e-2;

    void CheckPromptAndGreedy(Llama model, GoldenCase golden, double maxAbsDiff, int greedyCount)
    {
        using var cache = model.CreateCache(golden.Rows + greedyCount);
        var logits = new float[golden.Rows * golden.Vocab];
        model.Forward(golden.Tokens, 0, cache, logits);
        double worst = 0;
        int sameTop = 0;
        for (int i = 0; i < golden.Rows; i++)
        {
            var row = logits.AsSpan(i * golden.Vocab, golden.Vocab);
            worst = Math.Max(worst, LogitCompare.MaxAbsDiff(row, golden.Row(i)));
            if (LogitCompare.Argmax(row) == LogitCompare.Argmax(golden.Row(i))) sameTop++;
        }
        var last = logits.AsSpan((golden.Rows - 1) * golden.Vocab, golden.Vocab).ToArray();
        var greedy = new List<int>();
        for (int i = 0; i < greedyCount; i++)
        {
            int next = LogitCompare.Argmax(last);
            greedy.Add(next);
            if (i + 1 < greedyCount) model.Forward([next], golden.Rows + i, cache, last);
        }
        string report = $"{golden.Name}: max|diff| {worst:E2}, top token equal at {sameTop}/{golden.Rows}, greedy {string.Join(' ', greedy)}";
        output.WriteLine(report);
        worst.Should().BeLessThanOrEqualTo(maxAbsDiff, report);
        sameTop.Should().Be(golden.Rows, report);
        greedy.Should().Equal(golden.GreedyTokens.Take(greedyCount), report);
    }

    /// <summary>--gpu-layers: the first layer on the device, the second and the output on the CPU, against the same
    /// goldens; the device holds only its part of the weights and of the KV cache.</summary>
    [Theory]
    [InlineData("fx-llama-F32")]
    [InlineData("fx-qwen3moe-F16")] // the device holds the first layer's expert stacks only
    public void A_model_split_between_the_device_and_the_cpu_matches_llama_cpp(string name)
    {
        var folder = FixtureGoldenTests.FixtureFolder(name)!;
        GpuBackend? gpu = null;
        var options = new ModelOptions
        {
            StageFactory = (config, _) => [new LayerStage(gpu = new GpuBackend(device.ModelDevice, ownsDevice: false), 0, 1),
                                           new LayerStage(new Engine.Backends.Cpu.CpuBackend(2), 1, config.LayerCount - 1)],
        };
        using var model = LoadedModel.Open(Path.Combine(folder, name + ".gguf"), options);
        var w = model.Model.Weights;
        long devicePart = w.Part(0, 1, embedding: true, output: false).AllMatrices.Sum(m => m.View.ByteSize);
        long all = w.Matrices().Sum(m => m.View.ByteSize);
        gpu!.Memory.Used.Should().BeGreaterThan(devicePart).And.BeLessThan(all, "the second layer and the output stay on the CPU");
        CheckPromptAndGreedy(model.Model, GoldenCase.LoadFixture(folder, name), MaxAbsDiff(name), SimulatorGreedyTokens);
    }

    [Fact]
    public void Weights_are_uploaded_once_when_the_model_is_opened()
    {
        var folder = FixtureGoldenTests.FixtureFolder("fx-llama-F16")!;
        GpuBackend? backend = null;
        var options = new ModelOptions { BackendFactory = (_, _) => backend = new GpuBackend(device.ModelDevice, ownsDevice: false) };
        using var model = LoadedModel.Open(Path.Combine(folder, "fx-llama-F16.gguf"), options);
        long weightBytes = model.Model.Weights.Matrices().Sum(m => m.View.ByteSize);
        backend!.Memory.Used.Should().BeGreaterThan(weightBytes, "every matrix is resident (F16 uploads byte for byte) beside the activations");
        long afterOpen = backend.Memory.Used;
        using var cache = model.Model.CreateCache(8);
        var logits = new float[model.Config.VocabSize];
        model.Model.Forward([1, 2, 3], 0, cache, logits);
        long afterFirstStep = backend.Memory.Used;
        (afterFirstStep - afterOpen - cache.Bytes).Should().BeLessThan(1024, "the first step adds the KV cache and small id/position/RoPE buffers");
        model.Model.Forward([4], 3, cache, logits);
        backend.Memory.Used.Should().Be(afterFirstStep, "later steps allocate nothing");
    }
}
