namespace Engine;

/// <summary>
/// A sampling or stop parameter is out of range (checklist R7, R9, R10). Derives from
/// <see cref="ArgumentException"/> so a server can map it to HTTP 400 with <see cref="ArgumentException.ParamName"/>
/// naming the offending field.
/// </summary>
public sealed class InvalidSamplingOptionsException : ArgumentException
{
    /// <summary>An option out of range.</summary>
    /// <param name="message">What is wrong and the allowed range.</param>
    /// <param name="paramName">The option's name.</param>
    public InvalidSamplingOptionsException(string message, string paramName) : base(message, paramName) { }
}
