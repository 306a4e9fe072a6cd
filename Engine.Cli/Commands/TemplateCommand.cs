using System.Globalization;
using System.Text;
using System.Text.Json;
using Engine.Chat;

namespace Engine.Cli.Commands;

/// <summary>`engine template [--template-file F]`: renders one chat-template case read from stdin as Hugging Face
/// transformers would, and prints the prompt exactly (UTF-8, nothing added). The case is a JSON object:
/// {"template": text, "messages": [...], "tools": [...], "bos_token": ..., "eos_token": ..., "now": "2024-07-26T00:00:00",
/// "kwargs": {"add_generation_prompt": true, ...}}; --template-file replaces the template field.</summary>
public static class TemplateCommand
{
    const string Help = """
        usage: engine template [--template-file F] < case.json
          renders a Jinja chat template on the conversation in case.json (fields: template, messages, tools,
          bos_token, eos_token, now, kwargs with add_generation_prompt) and prints the prompt exactly;
          exit code 1 and a message on stderr when the template fails or raises an error
        """;

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, ModelArguments.Flags);
        if (cl.Has("help") || cl.Has("h")) { Console.WriteLine(Help); return 0; }
        var templateFile = cl.String("template-file");
        cl.RejectUnknown();
        string input;
        using (var reader = new StreamReader(Console.OpenStandardInput(), new UTF8Encoding(false))) input = reader.ReadToEnd();
        var output = Render(input, templateFile is null ? null : File.ReadAllText(templateFile, Encoding.UTF8));
        using var stdout = Console.OpenStandardOutput();
        stdout.Write(new UTF8Encoding(false).GetBytes(output));
        return 0;
    }

    /// <summary>Renders a case object; <paramref name="templateText"/> overrides its "template" field.</summary>
    /// <exception cref="ArgumentException">The case is not valid JSON or lacks a field (ChatTemplateException when the
    /// template fails).</exception>
    public static string Render(string caseJson, string? templateText)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(caseJson, new JsonDocumentOptions { MaxDepth = 128 }); }
        catch (JsonException e) { throw new ArgumentException("the case on stdin is not valid JSON: " + e.Message); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new ArgumentException("the case on stdin must be a JSON object");
            templateText ??= Text(root, "template") ?? throw new ArgumentException("the case has no \"template\" and no --template-file was given");
            var now = Text(root, "now") is string n
                ? DateTime.Parse(n, CultureInfo.InvariantCulture, DateTimeStyles.AssumeLocal)
                : DateTime.Now;
            var template = new JinjaChatTemplate(templateText, Text(root, "bos_token"), Text(root, "eos_token"), () => now, name: "template");
            var messages = root.TryGetProperty("messages", out var m) ? m : throw new ArgumentException("the case has no \"messages\"");
            JsonElement? tools = root.TryGetProperty("tools", out var t) ? t : null;
            JsonElement? kwargs = root.TryGetProperty("kwargs", out var k) && k.ValueKind == JsonValueKind.Object ? k : null;
            bool addGenerationPrompt = kwargs is { } kw && kw.TryGetProperty("add_generation_prompt", out var g) && g.ValueKind == JsonValueKind.True;
            return template.Apply(messages, tools, addGenerationPrompt, kwargs);
        }
    }

    static string? Text(JsonElement root, string name) =>
        root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}
