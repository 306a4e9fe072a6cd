namespace Engine.Cli.Commands;

/// <summary>Inspection of Safetensors files and Hugging Face folders.</summary>
public static class SafetensorsInspection
{
    public static InspectReport Inspect(string path) =>
        throw new Engine.Formats.ModelFormatException(Engine.Formats.FormatErrorKind.Io, "Safetensors inspection is not wired up yet", filePath: path);
}
