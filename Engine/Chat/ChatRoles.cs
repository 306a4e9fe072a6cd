namespace Engine.Chat;

/// <summary>Checks shared by the templates.</summary>
static class ChatRoles
{
    /// <summary>A role is written into the prompt verbatim by some templates, so it must not be able to carry
    /// markup or newlines: 1–32 ASCII letters, digits, '_' or '-'.</summary>
    public static void ValidateAll(IReadOnlyList<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        for (var i = 0; i < messages.Count; i++)
        {
            var m = messages[i] ?? throw new ChatTemplateException($"message {i} is null");
            if (m.Content is null) throw new ChatTemplateException($"message {i} has no content");
            var role = m.Role;
            if (string.IsNullOrEmpty(role) || role.Length > 32 || !role.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
                throw new ChatTemplateException($"message {i}: invalid role '{role}' (expected e.g. system, user, assistant, tool)");
        }
    }

    public static ChatTemplateException Unsupported(string template, int index, string role) =>
        new($"the {template} template does not support role '{role}' (message {index})");
}
