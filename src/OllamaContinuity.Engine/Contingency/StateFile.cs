using System.Diagnostics;
using System.Text;
using OllamaContinuity.Failover;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Contingency;

/// <summary>
/// A small JSON state file that several processes may change at once: every change takes an exclusive lock file
/// (<c>&lt;file&gt;.lock</c>, opened with <see cref="FileShare.None"/>, which is an exclusive flock on Unix), reads,
/// modifies and writes a temp file that is renamed over the original. Readers never lock: a rename is atomic, so
/// they see the old or the new file, never half of one. Reading is bounded (<see cref="BoundedFile"/>): a FIFO, a
/// device or a file over <see cref="BoundedFile.MaxStateBytes"/> is refused with <see cref="InvalidDataException"/>.
/// Temporary files left by a writer that was killed before its rename are removed by the next writer.
/// </summary>
internal static class StateFile
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode WorldReadable = OwnerOnly | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    private const UnixFileMode OwnerDir = OwnerOnly | UnixFileMode.UserExecute;
    private const UnixFileMode WorldDir = OwnerDir | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    /// <summary>How long a writer waits for another writer. The default value is 15 seconds.</summary>
    internal static TimeSpan LockTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Reads the file, or null when it does not exist. Throws <see cref="InvalidDataException"/> when it is not a regular file or is too large.</summary>
    public static byte[]? Read(string path) => BoundedFile.ReadAll(path);

    /// <summary>
    /// The JSON of a state file as UTF-8 without a byte-order mark: a UTF-8 BOM (Windows PowerShell's
    /// <c>Set-Content -Encoding UTF8</c>) is skipped and UTF-16 with a BOM (its <c>Out-File</c>) is converted, so a
    /// hand-edited file reads as what it says.
    /// </summary>
    public static ReadOnlyMemory<byte> JsonUtf8(byte[] bytes)
    {
        if (bytes.AsSpan().StartsWith(new byte[] { 0xEF, 0xBB, 0xBF }))
        {
            return bytes.AsMemory(3);
        }

        if (bytes.Length >= 2 && ((bytes[0] == 0xFF && bytes[1] == 0xFE) || (bytes[0] == 0xFE && bytes[1] == 0xFF)))
        {
            var encoding = bytes[0] == 0xFF ? Encoding.Unicode : Encoding.BigEndianUnicode;
            return Encoding.UTF8.GetBytes(encoding.GetString(bytes, 2, bytes.Length - 2));
        }

        return bytes;
    }

    /// <summary>
    /// Runs <paramref name="update"/> on the current content (null when absent) under the lock, and writes what it
    /// returns atomically; returning null leaves the file as it is.
    /// <paramref name="worldReadable"/>: 0644 (machine-wide settings other accounts must read), else 0600.
    /// </summary>
    public static T Update<T>(string path, bool worldReadable, Func<byte[]?, (byte[]? Content, T Result)> update)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        if (!System.IO.Directory.Exists(dir))
        {
            if (OperatingSystem.IsWindows())
            {
                System.IO.Directory.CreateDirectory(dir);
            }
            else
            {
                System.IO.Directory.CreateDirectory(dir, worldReadable ? WorldDir : OwnerDir);
            }
        }

        using var gate = AcquireLock(full + ".lock", worldReadable);
        RemoveOrphanedTempFiles(full);
        var (content, result) = update(Read(full));
        if (content is not null)
        {
            WriteAtomic(full, content, worldReadable);
        }

        return result;
    }

    private static FileStream AcquireLock(string lockPath, bool worldReadable)
    {
        var options = new FileStreamOptions { Mode = FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = worldReadable ? WorldReadable : OwnerOnly;
        }

        var sw = Stopwatch.StartNew();
        var delay = 5;
        while (true)
        {
            try
            {
                return new FileStream(lockPath, options);
            }
            catch (IOException) when (sw.Elapsed < LockTimeout)
            {
                Thread.Sleep(Random.Shared.Next(delay, delay * 2));
                delay = Math.Min(delay * 2, 100);
            }
            catch (IOException e)
            {
                throw new IOException($"Another process has held the lock {lockPath} for more than {LockTimeout.TotalSeconds:0} s; try again.", e);
            }
        }
    }

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="path"/> atomically with the mode of a state file of this kind.</summary>
    /// <remarks>Not flushed to disk: a copy torn by a power cut reads as damaged and is ignored.</remarks>
    public static void WriteCopy(string path, byte[] bytes, bool worldReadable)
    {
        var temp = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, "." + Path.GetFileName(path) + "." + Guid.NewGuid().ToString("n")[..8] + ".tmp");
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = worldReadable ? WorldReadable : OwnerOnly;
        }

        try
        {
            using (var fs = new FileStream(temp, options))
            {
                fs.Write(bytes);
            }

            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { }
            throw;
        }
    }

    // Under the lock no other writer of this file is between its temp file and its rename: every temp file of it
    // that is there now belongs to a writer that died (kill -9, power loss).
    private static void RemoveOrphanedTempFiles(string full)
    {
        RemoveOrphanedTempFiles(full, TimeSpan.Zero);
        // The last-good copy is also written by readers, without the lock: only theirs that are clearly dead.
        RemoveOrphanedTempFiles(full + ".last-good", TimeSpan.FromMinutes(1));
    }

    private static void RemoveOrphanedTempFiles(string full, TimeSpan minAge)
    {
        try
        {
            var prefix = "." + Path.GetFileName(full) + ".";
            foreach (var temp in System.IO.Directory.EnumerateFiles(Path.GetDirectoryName(full)!, prefix + "*.tmp"))
            {
                // Exactly OwnerOnlyFile's temp name: ".<file>.<8 hex>.tmp" (not the temp of another file such as <file>.last-good).
                var middle = Path.GetFileName(temp)[prefix.Length..^4];
                if (middle.Length != 8 || !middle.All(char.IsAsciiHexDigitLower) || DateTime.UtcNow - File.GetLastWriteTimeUtc(temp) < minAge)
                {
                    continue;
                }

                try
                {
                    File.Delete(temp);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // Someone else's, or gone already: not ours to worry about.
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    private static void WriteAtomic(string path, byte[] bytes, bool worldReadable) =>
        // The temp file gets its final mode before the rename: another account never sees an unreadable machine file.
        OwnerOnlyFile.WriteAllBytesAtomic(path, bytes, worldReadable ? WorldReadable : OwnerOnly);
}
