namespace Engine;

/// <summary>
/// The conversation cannot be rendered with this template (bad role, wrong turn order, …). An
/// <see cref="ArgumentException"/> because it is the request's fault: a server answers 400 (checklist R19).
/// </summary>
public sealed class ChatTemplateException : ArgumentException
{
    /// <summary>A conversation the template cannot render.</summary>
    /// <param name="message">What is wrong with it.</param>
    public ChatTemplateException(string message) : base(message, "messages") { }
}
