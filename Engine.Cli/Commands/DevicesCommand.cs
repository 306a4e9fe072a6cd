using Engine.Gpu;

namespace Engine.Cli.Commands;

/// <summary>`engine devices`: the accelerators ILGPU finds, i.e. what --device can use.</summary>
public static class DevicesCommand
{
    const string Help = "usage: engine devices    list the accelerators ILGPU finds (CPU is ILGPU's simulator, used by --device ilgpu-cpu)";

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, ModelArguments.Flags);
        if (cl.Has("help") || cl.Has("h")) { Console.WriteLine(Help); return 0; }
        cl.RejectUnknown();
        foreach (var line in DeviceProbe.Describe()) Console.WriteLine(line);
        return 0;
    }
}
