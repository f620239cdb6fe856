using Microsoft.AspNetCore.Connections.Features;

namespace OllamaContinuity.Gateway;

/// <summary>
/// The owner-only control socket: a Unix domain socket beside the state file (gateway.json -> gateway.sock), mode 0600
/// in an owner-only directory, so only the gateway's user (and root) can connect. It serves GET /healthz,
/// GET /v1/gateway/status and GET /metrics without a client token (the file's permissions are the authentication) and
/// refuses everything else, so it is never a token-free way to the model. Linux and macOS; on Windows the gateway
/// has none and Get-AiGateway uses a client token as before.
/// </summary>
internal static class ControlSocket
{
    /// <summary>The connection item that marks a connection accepted on the control socket.</summary>
    public const string ConnectionKey = "oc.control-socket";

    // sun_path is 108 bytes on Linux, 104 on macOS (with its terminating NUL).
    private const int MaxPathBytes = 103;
    private const UnixFileMode OwnerOnlyDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode OwnerOnlySocket = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>The control socket of a state file (same folder, same name, .sock), or null where there is none.</summary>
    public static string? PathFor(string? stateFile, out string? why)
    {
        why = null;
        if (stateFile is null)
        {
            return null;
        }

        if (OperatingSystem.IsWindows())
        {
            why = "no control socket on Windows (Get-AiGateway reads the counts with a client token)";
            return null;
        }

        var path = Path.ChangeExtension(Path.GetFullPath(stateFile), ".sock");
        if (System.Text.Encoding.UTF8.GetByteCount(path) > MaxPathBytes)
        {
            why = $"no control socket: its path would be longer than a Unix socket allows ({path})";
            return null;
        }

        return path;
    }

    /// <summary>
    /// Before Kestrel binds: the directory exists and is owner-only (so the socket is reachable by the owner alone from
    /// the moment it is bound, before its own mode is set), and a stale socket file left by a killed gateway is removed.
    /// </summary>
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public static void Prepare(string path)
    {
        var dir = Path.GetDirectoryName(path)!;
        if (!Directory.Exists(dir))
        {
            Directory.CreateDirectory(dir, OwnerOnlyDirectory);
        }

        if ((File.GetUnixFileMode(dir) & ~OwnerOnlyDirectory) != 0)
        {
            // Throws UnauthorizedAccessException when the directory is not this user's: then no control socket.
            File.SetUnixFileMode(dir, OwnerOnlyDirectory);
        }

        if (Directory.Exists(path))
        {
            throw new IOException($"The control socket path {path} is a directory.");
        }

        // A socket file outlives a killed process; Start-AiGateway refuses to start while a gateway of the state file runs.
        File.Delete(path);
    }

    /// <summary>Right after the bind: the socket file is owner-only (read and write: what connecting needs).</summary>
    public static void Restrict(string path)
    {
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, OwnerOnlySocket);
        }
    }

    public static void Remove(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    /// <summary>True when the request came over the control socket.</summary>
    public static bool IsControl(HttpContext ctx) =>
        ctx.Features.Get<IConnectionItemsFeature>()?.Items.ContainsKey(ConnectionKey) == true;

    /// <summary>What the control socket serves: read-only status, never a chat endpoint.</summary>
    public static bool Allows(HttpRequest request) =>
        HttpMethods.IsGet(request.Method) &&
        (request.Path.Equals("/healthz", StringComparison.Ordinal) || request.Path.Equals("/v1/gateway/status", StringComparison.Ordinal) ||
         request.Path.Equals("/metrics", StringComparison.Ordinal));
}
