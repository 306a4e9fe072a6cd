namespace Engine.Benchmarking;

/// <summary>A backend whose weights live in memory of its own (a GPU's), which measures how fast that memory
/// streams, for the decode ceiling of `engine bench`. Backends without it read the host's memory
/// (<see cref="MemoryBandwidth"/>).</summary>
internal interface IMemoryBandwidth
{
    /// <summary>Bytes per second read from the backend's memory, best of a few passes.</summary>
    double MeasureBytesPerSecond();
}
