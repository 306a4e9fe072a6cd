namespace Engine.Convert.Presets;

/// <summary>The rope_freqs tensor llama.cpp's converter writes for rope_type "llama3" (LlamaModel.generate_extra_tensors):
/// one factor per rotated pair, 1 for high frequencies, the scaling factor for low ones, smoothed between.
/// Computed in float32 as the converter's torch code does.</summary>
public static class Llama3RopeFactors
{
    public static float[] Compute(ModelPreset p)
    {
        var s = p.RopeScaling ?? throw new InvalidOperationException($"{p.Name} has no llama3 rope scaling");
        int dim = p.HeadDim;
        float lowFrequencyWavelength = (float)(s.OriginalContextLength / s.LowFrequencyFactor);
        float highFrequencyWavelength = (float)(s.OriginalContextLength / s.HighFrequencyFactor);
        var factors = new float[dim / 2];
        for (int i = 0; i < factors.Length; i++)
        {
            float frequency = 1f / MathF.Pow((float)p.RopeTheta, (float)(2 * i) / dim);
            float wavelength = (float)(2 * Math.PI) / frequency;
            if (wavelength < highFrequencyWavelength) factors[i] = 1f;
            else if (wavelength > lowFrequencyWavelength) factors[i] = (float)s.Factor;
            else
            {
                float smooth = (float)((s.OriginalContextLength / wavelength - s.LowFrequencyFactor) / (s.HighFrequencyFactor - s.LowFrequencyFactor));
                factors[i] = (float)(1 / ((1 - smooth) / s.Factor + smooth));
            }
        }
        return factors;
    }
}
