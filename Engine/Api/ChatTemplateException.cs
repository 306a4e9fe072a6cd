namespace Engine;

/// <summary>
/// The conversation cannot be rendered with this template (bad role, wrong turn order, …). An
/// <see cref="ArgumentException"/> because it is the request's fault: a server answers 400 (checklist R19).
/// </summary>
public sealed class ChatTemplateException : ArgumentException
{
    public ChatTemplateException(string message) : base(message, "messages") { }
}
