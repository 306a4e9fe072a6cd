using Engine.Gpu;

namespace Engine.Tests.Gpu;

public class DeviceProbeTests
{
    [Fact]
    public void IlgpuFindsAtLeastItsCpuAccelerator() =>
        DeviceProbe.Describe().Should().Contain(d => d.StartsWith("CPU"));
}
