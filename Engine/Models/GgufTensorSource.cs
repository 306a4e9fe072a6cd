using Engine.Formats;
using Engine.Formats.Gguf;

namespace Engine.Models;

/// <summary>A GGUF model's tensors (of every part of a split one), already under the names the model uses.</summary>
internal sealed class GgufTensorSource : ITensorSource
{
    readonly GgufModelFiles? _files;
    readonly GgufFile? _file;

    public GgufTensorSource(GgufModelFiles files) => _files = files;

    /// <summary>The tensors of one file that is the whole model.</summary>
    public GgufTensorSource(GgufFile file) => _file = file;

    public bool TryGetTensor(string ggufName, out TensorView view) =>
        _files is not null ? _files.TryGetTensor(ggufName, out view) : _file!.TryGetTensor(ggufName, out view!);
}
