using System.Globalization;
using System.Text.RegularExpressions;
using Engine.Cli.Store;

namespace Engine.Cli.Commands;

/// <summary>`engine pull REPO[:QUANT]`: a GGUF (every part of a split one) or, for a repository without GGUF files, its
/// safetensors model, from Hugging Face into the local store.</summary>
internal static class PullCommand
{
    const string Help = """
        usage: engine pull [modelscope:]OWNER/REPO[:QUANT] [--revision R]
          downloads the GGUF whose name carries QUANT (default Q4_K_M, else the repository's first GGUF), all parts of a
          split GGUF, or, when the repository has no GGUF, its top-level files (safetensors, config, tokenizer)
          into the model store (ENGINE_MODELS, default ~/.cache/engine/models); an interrupted pull resumes.
          HF_ENDPOINT sets the hub (default https://huggingface.co), HF_TOKEN the access token for gated or private repositories;
          the modelscope: prefix pulls from ModelScope instead (MODELSCOPE_ENDPOINT, default https://modelscope.cn; public repositories).
          --revision defaults to the hub's default branch: main on Hugging Face, master on ModelScope.
        """;

    const string DefaultQuant = "Q4_K_M";

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, ModelArguments.Flags);
        if (cl.Has("help") || cl.Has("h")) { Console.WriteLine(Help); return 0; }
        var revision = cl.String("revision");
        cl.RejectUnknown();
        if (cl.Positionals.Count != 1) throw new UsageException("pull takes one model name, OWNER/REPO or OWNER/REPO:QUANT");
        var name = ModelName.Parse(cl.Positionals[0]);
        var store = ModelStore.Default();
        var hub = HubClient.FromEnvironment(Console.Error, name.ModelScope);
        revision ??= hub.DefaultRevision;
        HubClient.CheckRevision(revision);
        try
        {
            Pull(store, hub, name, revision);
        }
        catch (HttpRequestException e)
        {
            throw new StoreException($"cannot reach {hub.Endpoint}: {e.Message}");
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new StoreException($"{hub.Endpoint} answered the file listing of {name.Repository} with malformed JSON: {e.Message}");
        }
        return 0;
    }

    static void Pull(ModelStore store, HubClient hub, ModelName name, string revision)
    {
        var files = Select(hub.ListFiles(name.Repository, revision), name);
        // Every name the hub sent is checked before anything is written.
        var targets = files.Select(f => store.FileOf(name, f.Path)).ToList();
        var folder = store.FolderOf(name);
        bool existed = Directory.Exists(folder);
        var before = store.Manifest(name);
        Directory.CreateDirectory(folder);
        try
        {
            foreach (var (file, target) in files.Zip(targets))
            {
                var known = before?.Files.FirstOrDefault(f => f.Path == file.Path);
                // A file an earlier pull verified is kept: on the manifest's word when it lists the same content, else
                // after hashing it again (a pull stopped between the parts of a split GGUF).
                if ((File.Exists(target) && known is not null && known.Size == file.Size && known.Sha256 == file.Sha256 && file.Sha256 is not null)
                    || HubClient.AlreadyHave(file, target))
                {
                    Console.Error.WriteLine($"engine: {file.Path} is already in the store");
                    continue;
                }
                hub.Download(name.Repository, revision, file, target);
            }
        }
        catch (HashMismatchException e)
        {
            // Nothing unverified stays behind: a pull that created the folder removes it whole.
            if (!existed || before is null)
            {
                Directory.Delete(folder, recursive: true);
                store.PruneEmptyParents(folder);
            }
            throw new StoreException(e.Message);
        }
        store.WriteManifest(name, new StoreManifest(name.ToString(), hub.Endpoint, revision,
            files.Select(f => new StoreManifest.Entry(Path.GetFileName(f.Path), f.Size, f.Sha256)).ToList(), DateTimeOffset.UtcNow));
        Console.Error.WriteLine($"engine: pulled {name} into {folder}");
        Console.WriteLine(store.ModelPath(name));
    }

    /// <summary>The files a name asks for: the GGUF whose name carries the quant tag (as a whole word, case-insensitively),
    /// with its sibling parts when it is split; or a safetensors repository's top-level files.</summary>
    internal static List<HubFile> Select(List<HubFile> listing, ModelName name)
    {
        var ggufs = listing.Where(f => f.Path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)
                                       && !Path.GetFileName(f.Path).Contains("mmproj", StringComparison.OrdinalIgnoreCase))
                           .OrderBy(f => f.Path, StringComparer.Ordinal).ToList();
        if (ggufs.Count == 0)
        {
            if (name.Quant is not null) throw new StoreException($"{name.Repository} has no GGUF files, so there is no quant '{name.Quant}' to pick; pull it without ':{name.Quant}' for its safetensors");
            var top = listing.Where(f => !f.Path.Contains('/')).ToList();
            if (!top.Any(f => f.Path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)))
                throw new StoreException($"{name.Repository} has neither GGUF nor safetensors files at its top level");
            return top;
        }
        HubFile? chosen = Matching(ggufs, name.Quant ?? DefaultQuant).FirstOrDefault();
        if (chosen is null && name.Quant is null) chosen = ggufs[0];
        if (chosen is null)
            throw new StoreException($"{name.Repository} has no GGUF matching '{name.Quant}'; it has: {string.Join(", ", ggufs.Select(f => f.Path))}");
        if (SplitGguf.Parts(chosen.Path) is not { } paths) return [chosen];
        return [.. paths.Select((path, i) => ggufs.FirstOrDefault(f => string.Equals(f.Path, path, StringComparison.OrdinalIgnoreCase))
            ?? throw new StoreException($"{name.Repository} lists {chosen.Path} but not part {i + 1} of {paths.Count} ({path})"))];
    }

    static IEnumerable<HubFile> Matching(List<HubFile> ggufs, string quant)
    {
        var word = new Regex($"(?<![A-Za-z0-9]){Regex.Escape(quant)}(?![A-Za-z0-9_])", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
        return ggufs.Where(f => word.IsMatch(f.Path));
    }
}

/// <summary>`engine list`: the models in the store.</summary>
internal static class ListCommand
{
    const string Help = "usage: engine list    the pulled models: name, size, files, where they are (store: ENGINE_MODELS, default ~/.cache/engine/models)";

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, ModelArguments.Flags);
        if (cl.Has("help") || cl.Has("h")) { Console.WriteLine(Help); return 0; }
        cl.RejectUnknown();
        if (cl.Positionals.Count != 0) throw new UsageException("list takes no arguments");
        var store = ModelStore.Default();
        var models = store.List();
        if (models.Count == 0) { Console.Error.WriteLine($"engine: no models in {store.Root}; get one with 'engine pull OWNER/REPO:QUANT'"); return 0; }
        int width = Math.Max(4, models.Max(m => m.Name.Length));
        Console.WriteLine($"{"NAME".PadRight(width)}  {"SIZE",10}  FILES  PULLED");
        foreach (var m in models)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{m.Name.PadRight(width)}  {DownloadProgress.Bytes(m.TotalBytes),10}  {m.Files.Count,5}  {m.Pulled:yyyy-MM-dd HH:mm}"));
        return 0;
    }
}

/// <summary>`engine rm NAME`: deletes a pulled model (or what an unfinished pull left) from the store.</summary>
internal static class RmCommand
{
    const string Help = "usage: engine rm OWNER/REPO[:QUANT]...    delete pulled models from the store";

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, ModelArguments.Flags);
        if (cl.Has("help") || cl.Has("h")) { Console.WriteLine(Help); return 0; }
        cl.RejectUnknown();
        if (cl.Positionals.Count == 0) throw new UsageException("rm needs the name of a pulled model");
        var store = ModelStore.Default();
        var names = cl.Positionals.Select(ModelName.Parse).ToList();
        foreach (var name in names)
        {
            if (!store.Remove(name)) throw new StoreException($"{name} is not in the store {store.Root} (see 'engine list')");
            Console.Error.WriteLine($"engine: deleted {name}");
        }
        return 0;
    }
}
