using System.Buffers;
using System.Text;
using System.Text.Json;

namespace OllamaContinuity.Internal;

/// <summary>A line of a JSON-lines file that was skipped, and why (for a warning with the line number).</summary>
/// <param name="Path">The file.</param>
/// <param name="LineNumber">The line, counting from 1.</param>
/// <param name="Reason">Why it was skipped (not JSON, a field of the wrong type, too long, not UTF-8).</param>
public sealed record JsonLineProblem(string Path, long LineNumber, string Reason)
{
    public override string ToString() => $"{Path} line {LineNumber}: {Reason}; the line was skipped";
}

/// <summary>
/// Reads the module's JSON-lines logs (request log, contingency log, alert deliveries) while other processes may be
/// appending to them. Tolerant: a line that is not valid UTF-8, not JSON, longer than the line limit, or that the
/// caller's parser rejects is skipped and reported with its number; the rest is read. Bounded: memory stays within
/// one line's limit whatever the file holds, and only a regular file is read (<see cref="BoundedFile.OpenRegular"/>).
/// </summary>
public static class JsonLines
{
    /// <summary>The longest line that is read. The default value is 1 MiB.</summary>
    public const int DefaultMaxLineBytes = 1024 * 1024;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// The non-blank lines of <paramref name="path"/> with their numbers (from 1), oldest first; nothing when the file
    /// does not exist. Lines appended while reading are read up to where the file ended when it was opened.
    /// Throws <see cref="InvalidDataException"/> when the path is not a regular file.
    /// </summary>
    public static IEnumerable<(long Number, string Text)> ReadLines(string path, Action<JsonLineProblem>? onProblem = null, int maxLineBytes = DefaultMaxLineBytes)
    {
        var fs = BoundedFile.OpenRegular(path);
        if (fs is null)
        {
            yield break;
        }

        using (fs)
        {
            var remaining = fs.Length;
            var chunk = ArrayPool<byte>.Shared.Rent(64 * 1024);
            var line = new ArrayBufferWriter<byte>(4096);
            var number = 0L;
            var tooLong = false;
            try
            {
                while (true)
                {
                    var n = remaining <= 0 ? 0 : fs.Read(chunk, 0, (int)Math.Min(chunk.Length, remaining));
                    remaining -= n;
                    var start = 0;
                    for (var i = 0; i <= n; i++)
                    {
                        var end = i == n;
                        if (!end && chunk[i] != (byte)'\n')
                        {
                            continue;
                        }

                        var piece = chunk.AsSpan(start, i - start);
                        if (!tooLong)
                        {
                            if (line.WrittenCount + piece.Length > maxLineBytes)
                            {
                                tooLong = true;
                                line.Clear();
                            }
                            else
                            {
                                line.Write(piece);
                            }
                        }

                        start = i + 1;
                        if (end && n > 0)
                        {
                            break; // the line goes on in the next chunk
                        }

                        number++;
                        if (Complete(path, number, line, tooLong, onProblem) is { } text)
                        {
                            yield return (number, text);
                        }

                        line.Clear();
                        tooLong = false;
                        if (end)
                        {
                            break;
                        }
                    }

                    if (n == 0)
                    {
                        yield break;
                    }
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(chunk);
            }
        }

        string? Complete(string p, long no, ArrayBufferWriter<byte> bytes, bool overLimit, Action<JsonLineProblem>? report)
        {
            if (overLimit)
            {
                report?.Invoke(new JsonLineProblem(p, no, $"the line is longer than {maxLineBytes:N0} bytes"));
                return null;
            }

            var span = bytes.WrittenSpan;
            if (no == 1 && span.StartsWith("\uFEFF"u8))
            {
                span = span[3..];
            }

            string text;
            try
            {
                text = StrictUtf8.GetString(span);
            }
            catch (DecoderFallbackException)
            {
                report?.Invoke(new JsonLineProblem(p, no, "the line is not valid UTF-8"));
                return null;
            }

            return string.IsNullOrWhiteSpace(text) ? null : text.TrimEnd('\r');
        }
    }

    /// <summary>
    /// Parses each line with <paramref name="parse"/>, oldest first. A line that is not JSON, or that the parser rejects
    /// (by throwing <see cref="JsonException"/>, <see cref="InvalidOperationException"/>, <see cref="FormatException"/>,
    /// <see cref="KeyNotFoundException"/>, <see cref="InvalidDataException"/> or <see cref="ArgumentException"/>), or
    /// for which it returns null, is reported to <paramref name="onProblem"/> and skipped.
    /// </summary>
    public static IEnumerable<T> Read<T>(string path, Func<JsonElement, T?> parse, Action<JsonLineProblem>? onProblem = null, int maxLineBytes = DefaultMaxLineBytes)
        where T : class
    {
        foreach (var (number, text) in ReadLines(path, onProblem, maxLineBytes))
        {
            T? item;
            string? problem;
            try
            {
                using var doc = JsonDocument.Parse(text);
                item = parse(doc.RootElement);
                problem = item is null ? "the line is not a record of this log" : null;
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or KeyNotFoundException or InvalidDataException or ArgumentException)
            {
                item = null;
                problem = e is JsonException ? "not valid JSON (" + e.Message + ")" : e.Message;
            }

            if (item is null)
            {
                onProblem?.Invoke(new JsonLineProblem(path, number, problem!));
                continue;
            }

            yield return item;
        }
    }
}
