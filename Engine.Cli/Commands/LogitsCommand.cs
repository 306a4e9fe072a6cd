namespace Engine.Cli.Commands;

public static class LogitsCommand
{
    public static int Run(string[] args) => throw new UsageException("not implemented yet");
}
