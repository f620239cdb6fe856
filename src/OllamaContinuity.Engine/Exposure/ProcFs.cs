using System.Globalization;
using System.Net;

namespace OllamaContinuity.Exposure;

/// <summary>A TCP socket in LISTEN state, from /proc/net/tcp or tcp6 (Uid set), Get-NetTCPConnection (Pid set) or netstat.</summary>
public sealed record ListeningSocket(IPAddress Address, int Port, int Uid)
{
    /// <summary>The owning process where the source tells it (Get-NetTCPConnection's OwningProcess); otherwise null.</summary>
    public int? Pid { get; init; }

    /// <summary>The socket's inode from /proc/net/tcp{,6} (0 when the source does not tell it): matched against a process's /proc/&lt;pid&gt;/fd to find its owner.</summary>
    public long Inode { get; init; }

    public bool IsLoopback => IPAddress.IsLoopback(Address) || (Address.IsIPv4MappedToIPv6 && IPAddress.IsLoopback(Address.MapToIPv4()));

    public bool IsWildcard => Address.Equals(IPAddress.Any) || Address.Equals(IPAddress.IPv6Any);

    public override string ToString() => (Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{Address}]" : Address.ToString()) + ":" + Port;
}

/// <summary>A running process, from /proc/&lt;pid&gt;.</summary>
public sealed record ProcessInfo(int Pid, string Command, IReadOnlyList<string> Arguments, int Uid, IReadOnlyDictionary<string, string>? Environment);

/// <summary>Reads Linux /proc under a configurable root, so tests use fixture trees.</summary>
public static class ProcFs
{
    /// <summary>Sockets listening on <paramref name="port"/> (any port when 0) from &lt;proc&gt;/net/tcp and tcp6.</summary>
    public static IReadOnlyList<ListeningSocket> Listening(string procRoot, int port = 0)
    {
        var result = new List<ListeningSocket>();
        foreach (var file in new[] { "net/tcp", "net/tcp6" })
        {
            var path = Path.Combine(procRoot, file);
            if (!File.Exists(path))
            {
                continue;
            }

            foreach (var line in File.ReadLines(path).Skip(1))
            {
                if (ParseLine(line) is { } s && (port == 0 || s.Port == port))
                {
                    result.Add(s);
                }
            }
        }

        return result;
    }

    /// <summary>One line of /proc/net/tcp{,6}; null unless the socket is listening (state 0A).</summary>
    internal static ListeningSocket? ParseLine(string line)
    {
        var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (f.Length < 8 || f[3] != "0A")
        {
            return null;
        }

        var colon = f[1].LastIndexOf(':');
        if (colon < 0 || !int.TryParse(f[1][(colon + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var port))
        {
            return null;
        }

        var hex = f[1][..colon];
        byte[] bytes;
        if (hex.Length is 8 or 32)
        {
            // Each 32-bit word is printed in the kernel's (little-endian) byte order.
            bytes = new byte[hex.Length / 2];
            for (var w = 0; w < hex.Length / 8; w++)
            {
                var word = uint.Parse(hex.AsSpan(w * 8, 8), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                bytes[(w * 4) + 0] = (byte)word;
                bytes[(w * 4) + 1] = (byte)(word >> 8);
                bytes[(w * 4) + 2] = (byte)(word >> 16);
                bytes[(w * 4) + 3] = (byte)(word >> 24);
            }
        }
        else
        {
            return null;
        }

        _ = int.TryParse(f[7], NumberStyles.Integer, CultureInfo.InvariantCulture, out var uid);
        long inode = 0;
        if (f.Length > 9)
        {
            _ = long.TryParse(f[9], NumberStyles.Integer, CultureInfo.InvariantCulture, out inode);
        }

        return new ListeningSocket(new IPAddress(bytes), port, uid) { Inode = inode };
    }

    /// <summary>Running <c>ollama serve</c> processes (and the desktop app's server), with uid and, where readable, environment.</summary>
    public static IReadOnlyList<ProcessInfo> OllamaServers(string procRoot) => Find(procRoot, (dir, pid, cmdline) =>
    {
        var comm = File.Exists(Path.Combine(dir, "comm")) ? File.ReadAllText(Path.Combine(dir, "comm")).Trim() : "";
        var exe = cmdline.Length > 0 ? Path.GetFileName(cmdline[0]) : comm;
        return (exe == "ollama" || comm == "ollama") && cmdline.Contains("serve")
            ? new ProcessInfo(pid, exe, cmdline, ReadUid(dir), ReadEnvironment(Path.Combine(dir, "environ")))
            : null;
    });

    /// <summary>The file name of the gateway's assembly (<c>dotnet OllamaContinuity.Gateway.dll ...</c>).</summary>
    public const string GatewayAssembly = Gateway.GatewayControl.GatewayAssembly;

    /// <summary>
    /// Running OllamaContinuity gateway processes: a command line that runs <c>OllamaContinuity.Gateway.dll</c> (through
    /// dotnet) or the <c>OllamaContinuity.Gateway</c> host itself. <see cref="ProcessInfo.Arguments"/> is the whole command line.
    /// </summary>
    public static IReadOnlyList<ProcessInfo> GatewayProcesses(string procRoot) => Find(procRoot, (dir, pid, cmdline) =>
        cmdline.Take(3).Any(a => Path.GetFileName(a) is GatewayAssembly or "OllamaContinuity.Gateway" or "OllamaContinuity.Gateway.exe")
            ? new ProcessInfo(pid, Path.GetFileName(cmdline[0]), cmdline, ReadUid(dir), null)
            : null);

    /// <summary>The processes under <paramref name="procRoot"/> that <paramref name="match"/> makes a <see cref="ProcessInfo"/> of (it gets the folder, the PID and the command line).</summary>
    private static IReadOnlyList<ProcessInfo> Find(string procRoot, Func<string, int, string[], ProcessInfo?> match)
    {
        var list = new List<ProcessInfo>();
        if (!Directory.Exists(procRoot))
        {
            return list;
        }

        foreach (var dir in Directory.EnumerateDirectories(procRoot))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
            {
                continue;
            }

            try
            {
                if (match(dir, pid, ReadCommandLine(dir)) is { } found)
                {
                    list.Add(found);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The process ended or is not ours to read.
            }
        }

        return list;
    }

    private static string[] ReadCommandLine(string processDir)
    {
        var file = Path.Combine(processDir, "cmdline");
        return File.Exists(file) ? File.ReadAllText(file).Split('\0', StringSplitOptions.RemoveEmptyEntries) : [];
    }

    /// <summary>A process by its PID (null when &lt;proc&gt;/&lt;pid&gt; does not exist): its command line and uid, no environment.</summary>
    public static ProcessInfo? Process(string procRoot, int pid)
    {
        var dir = Path.Combine(procRoot, pid.ToString(CultureInfo.InvariantCulture));
        try
        {
            if (pid <= 0 || !Directory.Exists(dir))
            {
                return null;
            }

            var cmdline = ReadCommandLine(dir);
            return new ProcessInfo(pid, cmdline.Length > 0 ? Path.GetFileName(cmdline[0]) : "", cmdline, ReadUid(dir), null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// The inodes of the sockets a process holds open (its /proc/&lt;pid&gt;/fd links <c>socket:[inode]</c>), or null
    /// when they cannot be read (another user's process, without root).
    /// </summary>
    public static IReadOnlySet<long>? SocketInodes(string procRoot, int pid)
    {
        var fd = Path.Combine(procRoot, pid.ToString(CultureInfo.InvariantCulture), "fd");
        try
        {
            var set = new HashSet<long>();
            foreach (var link in Directory.EnumerateFileSystemEntries(fd))
            {
                string? target;
                try
                {
                    target = new FileInfo(link).LinkTarget;
                }
                catch (IOException)
                {
                    continue; // the descriptor was closed meanwhile
                }

                if (target is not null && target.StartsWith("socket:[", StringComparison.Ordinal) && target.EndsWith(']')
                    && long.TryParse(target.AsSpan(8, target.Length - 9), NumberStyles.None, CultureInfo.InvariantCulture, out var inode))
                {
                    set.Add(inode);
                }
            }

            return set;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static int ReadUid(string processDir)
    {
        var uid = -1;
        var status = Path.Combine(processDir, "status");
        if (File.Exists(status))
        {
            var uidLine = File.ReadLines(status).FirstOrDefault(l => l.StartsWith("Uid:", StringComparison.Ordinal));
            var parts = uidLine?.Split(['\t', ' '], StringSplitOptions.RemoveEmptyEntries);
            if (parts is { Length: > 1 })
            {
                _ = int.TryParse(parts[1], out uid);
            }
        }

        return uid;
    }

    private static Dictionary<string, string>? ReadEnvironment(string path)
    {
        try
        {
            if (!File.Exists(path))
            {
                return null;
            }

            var env = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var kv in File.ReadAllText(path).Split('\0', StringSplitOptions.RemoveEmptyEntries))
            {
                var eq = kv.IndexOf('=');
                if (eq > 0)
                {
                    env[kv[..eq]] = kv[(eq + 1)..];
                }
            }

            return env;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>A user name from &lt;root&gt;/etc/passwd, or the number.</summary>
    public static string UserName(string root, int uid)
    {
        var passwd = Path.Combine(root, "etc/passwd");
        if (uid >= 0 && File.Exists(passwd))
        {
            foreach (var line in File.ReadLines(passwd))
            {
                var f = line.Split(':');
                if (f.Length > 2 && f[2] == uid.ToString(CultureInfo.InvariantCulture))
                {
                    return f[0];
                }
            }
        }

        return uid.ToString(CultureInfo.InvariantCulture);
    }
}
