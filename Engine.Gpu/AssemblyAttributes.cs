using System.Runtime.CompilerServices;

// ILGPU builds each kernel's launcher in a dynamic assembly of its own; the kernels, their argument structs and the
// block decoders are internal, so that assembly must see them (ILGPU's documented way to keep kernel types internal).
[assembly: InternalsVisibleTo(ILGPU.Context.RuntimeAssemblyName)]
