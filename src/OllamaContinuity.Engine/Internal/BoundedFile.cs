using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace OllamaContinuity.Internal;

/// <summary>
/// Opens the module's state files and logs without trusting what is at the path: a FIFO (which would block
/// <c>open</c> until a writer comes), a device such as <c>/dev/zero</c> (endless), a directory, or a file larger than
/// a state file can be is refused with <see cref="InvalidDataException"/> naming the path, before it can hang the
/// session or fill its memory. On Linux and macOS the file is opened with <c>O_NONBLOCK</c>, so nothing blocks while
/// its type is checked.
/// </summary>
public static class BoundedFile
{
    /// <summary>The largest state file (contingency, alerts, markers) that is read. The value is 1 MiB.</summary>
    public const int MaxStateBytes = 1024 * 1024;

    /// <summary>Reads the whole file, or returns null when there is none. Throws <see cref="InvalidDataException"/> when it is not a regular file or is larger than <paramref name="maxBytes"/>.</summary>
    public static byte[]? ReadAll(string path, int maxBytes = MaxStateBytes)
    {
        using var fs = OpenRegular(path);
        if (fs is null)
        {
            return null;
        }

        var length = fs.Length;
        if (length > maxBytes)
        {
            throw new InvalidDataException($"{path} is {length:N0} bytes, more than the {maxBytes:N0} bytes a state file may have; it is not read.");
        }

        var buffer = new byte[length];
        var read = 0;
        while (read < buffer.Length)
        {
            var n = fs.Read(buffer, read, buffer.Length - read);
            if (n == 0)
            {
                break;
            }

            read += n;
        }

        return read == buffer.Length ? buffer : buffer[..read];
    }

    /// <summary>
    /// Opens a regular file for reading (shared with writers and appenders), or returns null when there is none.
    /// Throws <see cref="InvalidDataException"/> for a directory, pipe, socket or device.
    /// </summary>
    public static FileStream? OpenRegular(string path)
    {
        if (Directory.Exists(path))
        {
            throw new InvalidDataException($"{path} is a directory, not a file.");
        }

        FileStream fs;
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
        {
            var fd = Open(path, OpenFlags());
            if (fd < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                return errno switch
                {
                    2 or 20 => null, // ENOENT, ENOTDIR
                    1 or 13 => throw new UnauthorizedAccessException($"Access to {path} is denied."),
                    _ => throw new IOException($"Cannot open {path}: {Marshal.GetPInvokeErrorMessage(errno)}."),
                };
            }

            fs = new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Read, bufferSize: 0);
        }
        else
        {
            try
            {
                fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0);
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                return null;
            }
        }

        try
        {
            // A pipe, socket or terminal cannot seek; a device (/dev/zero) can, but says it is empty and then is not.
            if (!fs.CanSeek)
            {
                throw NotRegular(path, "a pipe, socket or terminal");
            }

            if (fs.Length == 0)
            {
                Span<byte> one = stackalloc byte[1];
                if (fs.Read(one) > 0)
                {
                    throw NotRegular(path, "a device");
                }

                fs.Position = 0;
            }

            return fs;
        }
        catch
        {
            fs.Dispose();
            throw;
        }
    }

    private static InvalidDataException NotRegular(string path, string what) =>
        new($"{path} is not a regular file ({what}); it is not read.");

    // O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, per platform.
    private static int OpenFlags() => OperatingSystem.IsMacOS() ? 0x0004 | 0x20000 | 0x1000000 : 0x800 | 0x100 | 0x80000;

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);
}
