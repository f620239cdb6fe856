using System.Diagnostics;
using OllamaContinuity.Failover;

namespace OllamaContinuity.Contingency;

/// <summary>
/// A small JSON state file that several processes may change at once: every change takes an exclusive lock file
/// (<c>&lt;file&gt;.lock</c>, opened with <see cref="FileShare.None"/>, which is an exclusive flock on Unix), reads,
/// modifies and writes a temp file that is renamed over the original. Readers never lock: a rename is atomic, so
/// they see the old or the new file, never half of one.
/// </summary>
internal static class StateFile
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode WorldReadable = OwnerOnly | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    private const UnixFileMode OwnerDir = OwnerOnly | UnixFileMode.UserExecute;
    private const UnixFileMode WorldDir = OwnerDir | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    /// <summary>How long a writer waits for another writer. The default value is 15 seconds.</summary>
    internal static TimeSpan LockTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Reads the file, or null when it does not exist.</summary>
    public static byte[]? Read(string path)
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
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

    private static void WriteAtomic(string path, byte[] bytes, bool worldReadable) =>
        // The temp file gets its final mode before the rename: another account never sees an unreadable machine file.
        OwnerOnlyFile.WriteAllBytesAtomic(path, bytes, worldReadable ? WorldReadable : OwnerOnly);
}
