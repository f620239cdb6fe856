using System.Runtime.InteropServices;

namespace OllamaContinuity.Internal;

/// <summary>What identifies one version of a file: which file (device and inode) and its size, mtime and ctime (nanoseconds).</summary>
/// <remarks>
/// Any write, truncation, chmod or utime changes the ctime, which no user can set back; a file renamed over the path
/// (an atomic save) is another inode. The ctime only moves once per kernel clock tick (a few milliseconds), so a
/// version whose ctime is very recent may still change without changing it: callers trust a version only once its
/// ctime is old enough (see <see cref="ChangedWithin"/>).
/// </remarks>
internal readonly record struct FileVersion(ulong Device, ulong Inode, long Size, long MtimeNs, long CtimeNs, bool IsRegular)
{
    /// <summary>True when the file's last change (ctime) is less than <paramref name="window"/> before <paramref name="now"/>.</summary>
    public bool ChangedWithin(TimeSpan window, DateTimeOffset now) =>
        now.ToUnixTimeMilliseconds() * 1_000_000L - CtimeNs < (long)window.TotalMilliseconds * 1_000_000L;
}

/// <summary>
/// Linux system calls for the per-request paths (the contingency state check and the request log append): one
/// <c>statx</c> instead of several .NET file-info calls, and an append handle kept open with <c>O_APPEND</c>.
/// Everything here returns "unavailable" on other systems (or a libc without <c>statx</c>); callers then use .NET's APIs.
/// </summary>
internal static class LinuxFile
{
    private const int AtFdCwd = -100;
    private const int AtEmptyPath = 0x1000;
    private const uint StatxBasicStats = 0x7ff;
    private const int ENOENT = 2;
    private const int ENOTDIR = 20;

    // x86_64 and aarch64 share these (asm-generic): O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY.
    private const int AppendFlags = 0x1 | 0x40 | 0x400 | 0x80000 | 0x100;

    private static volatile bool _unavailable = !OperatingSystem.IsLinux();

    /// <summary>False on other systems, and once statx turned out to be missing.</summary>
    public static bool Available => !_unavailable;

    /// <summary>
    /// The version of the file at <paramref name="path"/> (symbolic links followed): true and the version; true and
    /// null when nothing is there (ENOENT, ENOTDIR); false when this cannot be told here (not Linux, no statx, another
    /// error: the caller falls back to .NET's APIs, which report the error as before).
    /// </summary>
    public static bool TryStat(string path, out FileVersion? version)
    {
        version = null;
        if (_unavailable)
        {
            return false;
        }

        Span<byte> buffer = stackalloc byte[256];
        int rc;
        try
        {
            rc = Statx(AtFdCwd, path, 0, StatxBasicStats, ref MemoryMarshal.GetReference(buffer));
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            _unavailable = true;
            return false;
        }

        if (rc != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            return errno is ENOENT or ENOTDIR;
        }

        version = Parse(buffer);
        return true;
    }

    /// <summary>The version of an open file (<c>statx</c> with <c>AT_EMPTY_PATH</c>), or null.</summary>
    public static FileVersion? Stat(int fd)
    {
        Span<byte> buffer = stackalloc byte[256];
        try
        {
            return Statx(fd, "", AtEmptyPath, StatxBasicStats, ref MemoryMarshal.GetReference(buffer)) == 0 ? Parse(buffer) : null;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            _unavailable = true;
            return null;
        }
    }

    // struct statx (linux/stat.h), the same on every architecture: mode u16 at 28, ino u64 at 32, size u64 at 40,
    // ctime {i64 sec, u32 nsec} at 96, mtime at 112, dev_major/dev_minor u32 at 136/140.
    private static FileVersion Parse(ReadOnlySpan<byte> b)
    {
        static long Ns(ReadOnlySpan<byte> t) => BitConverter.ToInt64(t) * 1_000_000_000L + BitConverter.ToUInt32(t[8..]);
        var mode = BitConverter.ToUInt16(b[28..]);
        var dev = ((ulong)BitConverter.ToUInt32(b[136..]) << 32) | BitConverter.ToUInt32(b[140..]);
        return new FileVersion(dev, BitConverter.ToUInt64(b[32..]), (long)BitConverter.ToUInt64(b[40..]), Ns(b[112..]), Ns(b[96..]), (mode & 0xF000) == 0x8000);
    }

    /// <summary>Opens <paramref name="path"/> for appending (created owner-only, 0600 before the umask); returns the fd or -errno.</summary>
    public static int OpenAppend(string path)
    {
        var fd = Open(path, AppendFlags, 0x180);
        return fd >= 0 ? fd : -Marshal.GetLastPInvokeError();
    }

    /// <summary>Writes all of <paramref name="bytes"/>; returns 0 or the errno.</summary>
    public static int WriteAll(int fd, ReadOnlySpan<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            var n = Write(fd, ref MemoryMarshal.GetReference(bytes), bytes.Length);
            if (n < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno == 4)
                {
                    continue; // EINTR
                }

                return errno;
            }

            bytes = bytes[(int)n..];
        }

        return 0;
    }

    public static void CloseFd(int fd) => Close(fd);

    public static string Describe(int errno) => Marshal.GetPInvokeErrorMessage(errno);

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern int Statx(int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, ref byte buffer);

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, int mode);

    [DllImport("libc", EntryPoint = "write", SetLastError = true)]
    private static extern nint Write(int fd, ref byte buffer, nint count);

    [DllImport("libc", EntryPoint = "close", SetLastError = true)]
    private static extern int Close(int fd);
}
