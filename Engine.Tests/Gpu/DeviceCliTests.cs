using Engine.Gpu;
using Engine.Tests.Support;

namespace Engine.Tests.Gpu;

/// <summary>--device on the command line: an absent device is a clear one-line error, never a hang.</summary>
public class DeviceCliTests
{
    [Fact]
    public void Device_cuda_without_cuda_says_what_to_do_and_exits_1()
    {
        using (var cuda = GpuDevice.TryOpenAnyGpu())
            if (cuda?.Kind == DeviceKind.Cuda) return; // this machine has CUDA: nothing to refuse
        var r = CliRunner.Run("run", "--device", "cuda", "-n", "2");
        r.ExitCode.Should().Be(1, r.Stderr);
        r.Stderr.Should().Contain("no CUDA device").And.Contain("--device cpu");
        r.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(60));
    }

    [Fact]
    public void An_unknown_device_is_a_usage_error()
    {
        var r = CliRunner.Run("run", "--device", "tpu", "-n", "2");
        r.ExitCode.Should().Be(2);
        r.Stderr.Should().Contain("--device must be");
    }

    [Fact]
    public void Devices_lists_the_cpu_simulator() =>
        CliRunner.Run("devices").Stdout.Should().Contain("CPU");

    [Fact]
    public void Gpu_layers_splits_the_model_and_generates_the_same_text()
    {
        string[] greedy = ["run", "Once upon a time", "-n", "12", "--temperature", "0"];
        var onCpu = CliRunner.Run(greedy);
        var split = CliRunner.Run([.. greedy, "--device", "ilgpu-cpu", "--gpu-layers", "2"]);
        split.ExitCode.Should().Be(0, split.Stderr);
        split.Stderr.Should().Contain("layers 0-1 on IlgpuCpu").And.Contain("layers 2-4 and the output on the CPU");
        split.Stdout.Should().Be(onCpu.Stdout);
    }

    /// <summary>`engine bench` on a device shows what crosses per generated token: on a mixture-of-experts model,
    /// still only the token id (4 B) and the step's batch (position, slot, sequence, table start and one block-table
    /// entry: 20 B) in and the logits out.</summary>
    [Fact]
    public void Bench_on_a_device_reports_the_host_copies_per_generated_token()
    {
        var model = TestPaths.Repo("Engine.Tests", "Fixtures", "fx-qwen2moe-Q8_0.gguf");
        var r = CliRunner.Run("bench", "--model", model, "--device", "ilgpu-cpu", "-p", "4", "-n", "3", "-r", "1");
        r.ExitCode.Should().Be(0, r.Stderr);
        r.Stdout.Should().Contain("host-device copies per generated token: 1 upload (24 B), 1 read (");
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("many")]
    public void A_bad_gpu_layer_count_is_a_usage_error(string count)
    {
        var r = CliRunner.Run("run", "--device", "ilgpu-cpu", "--gpu-layers", count, "-n", "2");
        r.ExitCode.Should().Be(2);
        r.Stderr.Should().Contain("--gpu-layers must be");
    }
}
