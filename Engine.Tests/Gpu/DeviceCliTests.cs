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
}
