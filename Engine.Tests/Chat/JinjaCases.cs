using System.Globalization;
using System.Text.Json;
using Engine.Chat;
using Engine.Tests.Support;

namespace Engine.Tests.Chat;

/// <summary>The chat-template fixture (../shared/fixtures/chat-templates): cases.json and templates/*.jinja, and
/// rendering a case the way the fixture's README describes (variables from the case, strftime_now pinned to "now").</summary>
public static class JinjaCases
{
    public static string? Folder => TestPaths.Shared("fixtures", "chat-templates");

    static readonly Lazy<JsonElement[]> All = new(() =>
    {
        var path = Path.Combine(Folder ?? throw new InvalidOperationException(TestPaths.SharedMissing), "cases.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return [.. doc.RootElement.EnumerateArray().Select(e => e.Clone())];
    });

    public static IReadOnlyList<JsonElement> Cases => All.Value;

    public static JsonElement Case(string id) => Cases.Single(c => c.GetProperty("id").GetString() == id);

    /// <summary>Case ids for a theory; one placeholder when ../shared is missing (the theory is skipped then).</summary>
    public static IEnumerable<object[]> Ids() =>
        Folder is null ? [["(../shared missing)"]] : Cases.Select(c => new object[] { c.GetProperty("id").GetString()! });

    public static string TemplateText(JsonElement c) =>
        File.ReadAllText(Path.Combine(Folder!, "templates", c.GetProperty("template").GetString() + ".jinja"));

    /// <summary>Renders <paramref name="c"/>'s conversation with <paramref name="templateText"/>: the output, or the
    /// error message when the template fails.</summary>
    public static (string? Output, string? Error) Render(JsonElement c, string templateText)
    {
        string? Text(string name) => c.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        var now = DateTime.Parse(Text("now") ?? "2024-07-26T00:00:00", CultureInfo.InvariantCulture);
        try
        {
            var template = new JinjaChatTemplate(templateText, Text("bos_token"), Text("eos_token"), () => now);
            var kwargs = c.GetProperty("kwargs");
            bool addGenerationPrompt = kwargs.TryGetProperty("add_generation_prompt", out var g) && g.ValueKind == JsonValueKind.True;
            JsonElement? tools = c.TryGetProperty("tools", out var t) ? t : null;
            return (template.Apply(c.GetProperty("messages"), tools, addGenerationPrompt, kwargs), null);
        }
        catch (ChatTemplateException e) { return (null, e.Message); }
    }
}
