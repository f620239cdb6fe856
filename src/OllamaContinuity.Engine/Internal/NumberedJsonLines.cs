namespace OllamaContinuity.Internal;

/// <summary>One line of a JSON-lines log with its 1-based line number in the file (for a warning that names it).</summary>
internal readonly record struct NumberedLine(int Number, string Text);

/// <summary>
/// Reads a JSON-lines log line by line with line numbers, while other processes may be appending to it (shared
/// read, write and delete). Blank lines are skipped but counted, so a number is the one an editor shows. A last
/// line without its newline (a writer in the middle of its append) is still returned; the caller's parser decides.
/// </summary>
internal static class NumberedJsonLines
{
    /// <summary>The non-empty lines of <paramref name="path"/>, oldest first; nothing when the file does not exist.</summary>
    public static IEnumerable<NumberedLine> Read(string path)
    {
        if (!File.Exists(path))
        {
            yield break;
        }

        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(fs);
        var number = 0;
        while (reader.ReadLine() is { } line)
        {
            number++;
            if (!string.IsNullOrWhiteSpace(line))
            {
                yield return new NumberedLine(number, line);
            }
        }
    }
}
