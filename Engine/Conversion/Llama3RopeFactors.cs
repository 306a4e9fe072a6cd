namespace Engine.Conversion;

/// <summary>The rope_freqs tensor llama.cpp's converter writes for rope_type "llama3" (LlamaModel.generate_extra_tensors):
/// one factor per rotated pair, 1 for high frequencies, the scaling factor for low ones, smoothed between.
/// Computed in float32 as the converter's torch code does.</summary>
internal static class Llama3RopeFactors
{
    public static float[] Compute(int headDim, double ropeTheta, double factor, double lowFrequencyFactor, double highFrequencyFactor,
        int originalContextLength)
    {
        float lowFrequencyWavelength = (float)(originalContextLength / lowFrequencyFactor);
        float highFrequencyWavelength = (float)(originalContextLength / highFrequencyFactor);
        var factors = new float[headDim / 2];
        for (int i = 0; i < factors.Length; i++)
        {
            float frequency = 1f / MathF.Pow((float)ropeTheta, (float)(2 * i) / headDim);
            float wavelength = (float)(2 * Math.PI) / frequency;
            if (wavelength < highFrequencyWavelength) factors[i] = 1f;
            else if (wavelength > lowFrequencyWavelength) factors[i] = (float)factor;
            else
            {
                float smooth = (float)((originalContextLength / wavelength - lowFrequencyFactor) / (highFrequencyFactor - lowFrequencyFactor));
                factors[i] = (float)(1 / ((1 - smooth) / factor + smooth));
            }
        }
        return factors;
    }
}
