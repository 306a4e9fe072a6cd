using System.Globalization;

namespace Engine.Convert.Output;

public static class Units
{
    /// <summary>Bytes as MiB below 1 GiB, else GiB.</summary>
    public static string Size(long bytes) => bytes < 1L << 30
        ? (bytes / 1048576.0).ToString("0.0", CultureInfo.InvariantCulture) + " MiB"
        : (bytes / 1073741824.0).ToString("0.00", CultureInfo.InvariantCulture) + " GiB";

    /// <summary>A parameter count as 494.0M or 8.03B.</summary>
    public static string Count(long n) => n < 1_000_000_000
        ? (n / 1e6).ToString("0.0", CultureInfo.InvariantCulture) + "M"
        : (n / 1e9).ToString("0.00", CultureInfo.InvariantCulture) + "B";
}
