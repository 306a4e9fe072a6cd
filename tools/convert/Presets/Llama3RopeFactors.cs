namespace Engine.Convert.Presets;

/// <summary>The rope_freqs tensor of a preset with Llama 3 rope scaling, computed as `engine convert` computes it
/// from a Hugging Face config (<see cref="Engine.Conversion.Llama3RopeFactors"/>).</summary>
public static class Llama3RopeFactors
{
    public static float[] Compute(ModelPreset p)
    {
        var s = p.RopeScaling ?? throw new InvalidOperationException($"{p.Name} has no llama3 rope scaling");
        return Engine.Conversion.Llama3RopeFactors.Compute(p.HeadDim, p.RopeTheta, s.Factor, s.LowFrequencyFactor, s.HighFrequencyFactor,
            s.OriginalContextLength);
    }
}
