namespace Engine.Convert;

/// <summary>A problem the user can fix (bad option, missing vocab file, no disk space): reported as one line, no stack.</summary>
public sealed class ConvertException(string message) : Exception(message);
