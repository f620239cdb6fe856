using System.Collections.Concurrent;
using System.Text.Json;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Failover;

/// <summary>
/// Appends one JSON line per request. Location: <see cref="AiRequest"/>'s log path, else the
/// <c>OLLAMACONTINUITY_LOG_PATH</c> environment variable, else <see cref="DefaultPath"/>. Files are created owner-only.
/// A log that cannot be written never fails a request.
/// </summary>
public static class RequestLog
{
    public const string PathVariable = "OLLAMACONTINUITY_LOG_PATH";
    internal static readonly ConcurrentDictionary<string, SemaphoreSlim> Locks = new(StringComparer.Ordinal);

    /// <summary>
    /// Linux: <c>$XDG_STATE_HOME/OllamaContinuity/requests.jsonl</c> (default <c>~/.local/state</c>);
    /// macOS: <c>~/Library/Logs/OllamaContinuity/requests.jsonl</c>; Windows: <c>%LOCALAPPDATA%\OllamaContinuity\requests.jsonl</c>.
    /// </summary>
    public static string DefaultPath => Path.Combine(StateDirectory(), "requests.jsonl");

    /// <summary>The per-user state directory of the module (also used by later features).</summary>
    public static string StateDirectory()
    {
        if (OperatingSystem.IsWindows())
        {
            return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "OllamaContinuity");
        }

        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (OperatingSystem.IsMacOS())
        {
            return Path.Combine(home, "Library", "Logs", "OllamaContinuity");
        }

        var xdg = Environment.GetEnvironmentVariable("XDG_STATE_HOME");
        return Path.Combine(string.IsNullOrEmpty(xdg) ? Path.Combine(home, ".local", "state") : xdg, "OllamaContinuity");
    }

    public static string ResolvePath(string? explicitPath) =>
        !string.IsNullOrWhiteSpace(explicitPath) ? explicitPath
        : Environment.GetEnvironmentVariable(PathVariable) is { Length: > 0 } env ? env
        : DefaultPath;

    /// <summary>Serialises one entry (no secrets: endpoints are already redacted, prompts only when asked).</summary>
    internal static byte[] Serialize(AiRequest request, AiResponse? response, IReadOnlyList<AiAttempt> attempts, DateTimeOffset timestamp,
        double latencyMs, string failoverReason, bool contingency, string? contingencySource, string? error)
    {
        var buffer = new MemoryStream(512);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("requestId", request.RequestId);
            w.WriteString("timestamp", timestamp);
            w.WriteString("workflow", request.Workflow);
            w.WriteString("backend", response?.Backend ?? "None");
            w.WriteString("endpoint", response?.Endpoint);
            w.WriteString("model", response?.Model);
            w.WriteNumber("latencyMs", Math.Round(latencyMs, 3));
            w.WriteString("failoverReason", failoverReason);
            w.WriteBoolean("contingency", contingency);
            if (contingencySource is not null)
            {
                w.WriteString("contingencySource", contingencySource);
            }

            w.WriteBoolean("stream", request.Stream);
            if (response?.FinishReason is { } finish)
            {
                w.WriteString("finishReason", finish);
            }

            if (error is not null)
            {
                w.WriteString("error", error);
            }

            w.WriteStartArray("attempts");
            foreach (var a in attempts)
            {
                w.WriteStartObject();
                w.WriteString("backend", a.Backend);
                w.WriteString("endpoint", a.Endpoint);
                w.WriteString("outcome", a.Outcome);
                w.WriteString("failureClass", a.FailureClass.Length == 0 ? null : a.FailureClass);
                if (a.StatusCode is int s)
                {
                    w.WriteNumber("statusCode", s);
                }
                else
                {
                    w.WriteNull("statusCode");
                }

                w.WriteNumber("latencyMs", Math.Round(a.LatencyMs, 3));
                if (a.BadEvents > 0)
                {
                    w.WriteNumber("badEvents", a.BadEvents);
                }

                if (a.PartialText is not null)
                {
                    // How much was shown before the stream broke; the text itself only with LogContent.
                    w.WriteNumber("partialChars", a.PartialText.Length);
                    if (request.LogContent)
                    {
                        w.WriteString("partialText", a.PartialText);
                    }
                }

                w.WriteEndObject();
            }

            w.WriteEndArray();
            if (request.LogContent)
            {
                WriteContent(w, request, response?.Text);
            }

            w.WriteEndObject();
        }

        buffer.WriteByte((byte)'\n');
        return buffer.ToArray();
    }

    /// <summary>The prompt and the output: systemPrompt, messages (role, content), output. Also used by the contingency log.</summary>
    internal static void WriteContent(Utf8JsonWriter w, AiRequest request, string? output)
    {
        w.WriteString("systemPrompt", request.SystemPrompt);
        w.WriteStartArray("messages");
        foreach (var m in request.Messages)
        {
            w.WriteStartObject();
            w.WriteString("role", m.Role);
            w.WriteString("content", m.Content);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteString("output", output);
    }

    /// <summary>
    /// Appends one line to <paramref name="path"/>; returns the error text instead of throwing. The line is written
    /// (one <c>write</c> to the file) before this returns, so it is in the file even when the process is killed
    /// right after: nothing is buffered in the process.
    /// </summary>
    /// <remarks>
    /// On Linux the file stays open between lines (<see cref="AppendHandles"/>), which saves the open, lock, seek and
    /// close of every line; each line is still one write with <c>O_APPEND</c>. Before each line, the path is checked
    /// (one <c>statx</c>): when the file was deleted, moved away (log rotation) or replaced, it is opened again, so
    /// the line goes to the file that is at the path now.
    /// </remarks>
    public static async Task<string?> AppendAsync(string path, byte[] line, CancellationToken cancellationToken = default)
    {
        var full = Path.GetFullPath(path);
        var gate = Locks.GetOrAdd(full, static _ => new SemaphoreSlim(1, 1));
        try
        {
            await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return "cancelled";
        }

        try
        {
            if (AppendHandles.TryAppend(full, line, out var error))
            {
                return error;
            }

            OwnerOnlyFile.AppendAllBytes(full, line);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            return e.Message;
        }
        finally
        {
            gate.Release();
        }
    }
}

/// <summary>
/// Linux: log files kept open for appending, one per path, at most <see cref="MaxOpen"/> (a session writes one or
/// two). Callers hold the path's lock (<see cref="RequestLog.AppendAsync"/>'s gate).
/// </summary>
internal static class AppendHandles
{
    internal const int MaxOpen = 8;
    private static readonly ConcurrentDictionary<string, (int Fd, ulong Device, ulong Inode)> Open = new(StringComparer.Ordinal);

    /// <summary>True when the line was handled here (<paramref name="error"/>: null, or why it was not written); false: use the portable path.</summary>
    public static bool TryAppend(string full, ReadOnlySpan<byte> line, out string? error)
    {
        error = null;
        if (!LinuxFile.TryStat(full, out var now))
        {
            return false;
        }

        if (Open.TryGetValue(full, out var held) && (now is not { } v || v.Device != held.Device || v.Inode != held.Inode))
        {
            // Deleted, moved away or replaced since the last line: the next line goes to what is at the path now.
            Close(full);
            held = default;
        }

        if (now is { IsRegular: false })
        {
            return false; // a directory, FIFO or device: the portable path reports it as before
        }

        if (held.Fd <= 0)
        {
            try
            {
                OwnerOnlyFile.EnsureDirectory(Path.GetDirectoryName(full)!);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                error = e.Message;
                return true;
            }

            var fd = LinuxFile.OpenAppend(full);
            if (fd < 0)
            {
                error = $"Cannot open {full}: {LinuxFile.Describe(-fd)}.";
                return true;
            }

            if (LinuxFile.Stat(fd) is not { IsRegular: true } opened)
            {
                LinuxFile.CloseFd(fd);
                return false;
            }

            // Another path's handle is closed only under that path's lock, and only when it is free at once; when
            // none is, this line opens and closes its file as the portable path does.
            if (Open.Count >= MaxOpen && !EvictOne(full))
            {
                var written = LinuxFile.WriteAll(fd, line);
                LinuxFile.CloseFd(fd);
                error = written == 0 ? null : $"Cannot write {full}: {LinuxFile.Describe(written)}.";
                return true;
            }

            held = (fd, opened.Device, opened.Inode);
            Open[full] = held;
        }

        var errno = LinuxFile.WriteAll(held.Fd, line);
        if (errno != 0)
        {
            Close(full);
            error = $"Cannot write {full}: {LinuxFile.Describe(errno)}.";
        }

        return true;
    }

    private static bool EvictOne(string except)
    {
        foreach (var key in Open.Keys)
        {
            if (key != except && RequestLog.Locks.TryGetValue(key, out var gate) && gate.Wait(0))
            {
                try
                {
                    Close(key);
                    return true;
                }
                finally
                {
                    gate.Release();
                }
            }
        }

        return false;
    }

    private static void Close(string full)
    {
        if (Open.TryRemove(full, out var h))
        {
            LinuxFile.CloseFd(h.Fd);
        }
    }
}

/// <summary>Files and folders this module creates for its state and logs: owner-only on Unix.</summary>
public static class OwnerOnlyFile
{
    private const UnixFileMode DirMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode FileMode600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    public static void EnsureDirectory(string directory)
    {
        if (string.IsNullOrEmpty(directory) || Directory.Exists(directory))
        {
            return;
        }

        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(directory);
        }
        else
        {
            Directory.CreateDirectory(directory, DirMode);
        }
    }

    /// <summary>One write with O_APPEND, so lines from several processes do not interleave.</summary>
    public static void AppendAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        EnsureDirectory(Path.GetDirectoryName(path)!);
        var options = new FileStreamOptions
        {
            Mode = FileMode.Append,
            Access = FileAccess.Write,
            Share = FileShare.ReadWrite | FileShare.Delete,
        };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = FileMode600;
        }

        using var fs = new FileStream(path, options);
        fs.Write(bytes);
    }

    /// <summary>Writes a whole file atomically (temp file in the same folder, then rename), owner-only.</summary>
    /// <param name="unixMode">The file's mode on Unix. The default value is null: 0600 (owner-only).</param>
    public static void WriteAllBytesAtomic(string path, ReadOnlySpan<byte> bytes, UnixFileMode? unixMode = null)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        EnsureDirectory(dir);
        var temp = Path.Combine(dir, "." + Path.GetFileName(path) + "." + Guid.NewGuid().ToString("n")[..8] + ".tmp");
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = unixMode ?? FileMode600;
        }

        try
        {
            using (var fs = new FileStream(temp, options))
            {
                fs.Write(bytes);
                fs.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { }
            throw;
        }
    }
}
