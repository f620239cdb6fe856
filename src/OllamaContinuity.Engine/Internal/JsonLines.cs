namespace OllamaContinuity.Internal;

/// <summary>Reads the module's JSON-lines logs while other processes may be appending to them.</summary>
internal static class JsonLines
{
    /// <summary>The non-empty lines of <paramref name="path"/>, oldest first; nothing when the file does not exist.</summary>
    public static IEnumerable<string> Read(string path)
    {
        if (!File.Exists(path))
        {
            yield break;
        }

        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(fs);
        while (reader.ReadLine() is { } line)
        {
            if (!string.IsNullOrWhiteSpace(line))
            {
                yield return line;
            }
        }
    }
}
