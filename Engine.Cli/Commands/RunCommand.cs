namespace Engine.Cli.Commands;

public static class RunCommand
{
    public static int Run(string[] args) => throw new UsageException("not implemented yet");
}
