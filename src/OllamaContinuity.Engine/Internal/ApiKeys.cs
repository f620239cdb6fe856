namespace OllamaContinuity.Internal;

/// <summary>Checks a cloud API key before anything is sent with it. Messages never contain the key.</summary>
public static class ApiKeys
{
    /// <summary>The error id (and <see cref="ArgumentException.ParamName"/>) of a key that cannot be used.</summary>
    public const string InvalidKeyId = "InvalidCloudApiKey";

    /// <summary>
    /// The key with surrounding white space removed (a trailing newline is what <c>Get-Content -Raw</c> and
    /// <c>$(cat file)</c> leave). Throws <see cref="ArgumentException"/> (ParamName <see cref="InvalidKeyId"/>) when
    /// what is left is empty, or holds a control character (CR or LF would split the HTTP request) or a character
    /// outside printable ASCII (no provider issues such keys; an HTTP header cannot carry them).
    /// </summary>
    /// <param name="key">The key as given.</param>
    /// <param name="source">Where it came from, for the message: "-CloudApiKey" or "CLOUD_API_KEY".</param>
    public static string Normalize(string? key, string source)
    {
        var trimmed = key?.Trim() ?? "";
        if (trimmed.Length == 0)
        {
            throw new ArgumentException(
                $"The cloud API key from {source} is empty. Pass a key, or leave {source} out entirely to use Ollama only (a failed Get-Secret returns nothing: check the vault).",
                InvalidKeyId);
        }

        for (var i = 0; i < trimmed.Length; i++)
        {
            var c = trimmed[i];
            if (c < 0x20 || c == 0x7F)
            {
                throw new ArgumentException(
                    $"The cloud API key from {source} contains a control character (U+{(int)c:X4}) at position {i + 1}; nothing was sent. Copy the key again without line breaks or tabs.",
                    InvalidKeyId);
            }

            if (c > 0x7E)
            {
                throw new ArgumentException(
                    $"The cloud API key from {source} contains a non-ASCII character at position {i + 1}; nothing was sent. API keys are printable ASCII: copy the key again (a smart quote or a non-breaking space often slips in).",
                    InvalidKeyId);
            }
        }

        return trimmed;
    }
}
