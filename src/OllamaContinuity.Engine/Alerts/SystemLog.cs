using System.Net.Sockets;
using System.Text;
using OllamaContinuity.Native;

namespace OllamaContinuity.Alerts;

/// <summary>Writes one alert line to the system log.</summary>
public interface ISystemLog
{
    /// <summary>Where it writes, for the delivery record.</summary>
    string Target { get; }

    /// <summary>Writes the line; returns an error text instead of throwing.</summary>
    Task<string?> WriteAsync(string severity, string message, CancellationToken cancellationToken);
}

/// <summary>
/// The platform's system log. Linux: a datagram to the syslog socket <c>/dev/log</c> (journald and rsyslog both
/// read it), facility user, tag OllamaContinuity; when the socket is missing, <c>logger</c>. macOS: <c>logger</c>.
/// Windows: <c>eventcreate /L APPLICATION /SO OllamaContinuity</c> (the Application event log; creating the
/// source the first time needs an administrator).
/// </summary>
public sealed class SystemLog(ICommandRunner? runner = null, string socketPath = "/dev/log") : ISystemLog
{
    private readonly ICommandRunner _runner = runner ?? ProcessCommandRunner.Default;

    public string Target => OperatingSystem.IsWindows() ? "Windows Application log" : OperatingSystem.IsLinux() && File.Exists(socketPath) ? "syslog " + socketPath : "logger";

    public async Task<string?> WriteAsync(string severity, string message, CancellationToken cancellationToken)
    {
        var sev = severity switch { "critical" => 2, "warning" => 4, _ => 5 };
        try
        {
            if (OperatingSystem.IsWindows())
            {
                var type = sev <= 2 ? "ERROR" : sev == 4 ? "WARNING" : "INFORMATION";
                var r = await _runner.RunAsync(CommandInvocation.Of("eventcreate", "/L", "APPLICATION", "/T", type, "/SO", "OllamaContinuity", "/ID", (100 + sev).ToString(System.Globalization.CultureInfo.InvariantCulture), "/D", message), cancellationToken).ConfigureAwait(false);
                return r.Succeeded ? null : "eventcreate failed: " + r.StandardError.Trim();
            }

            if (OperatingSystem.IsLinux() && File.Exists(socketPath))
            {
                return await SendDatagramAsync(socketPath, Format(sev, message), cancellationToken).ConfigureAwait(false);
            }

            var level = sev <= 2 ? "crit" : sev == 4 ? "warning" : "notice";
            var res = await _runner.RunAsync(CommandInvocation.Of("logger", "-t", "OllamaContinuity", "-p", "user." + level, "--", message), cancellationToken).ConfigureAwait(false);
            return res.Succeeded ? null : "logger failed: " + res.StandardError.Trim();
        }
        catch (Exception e) when (e is SocketException or IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            return e.Message;
        }
    }

    /// <summary>An RFC 3164 line as the local syslog socket expects it: <c>&lt;PRI&gt;TAG[pid]: message</c>, facility user (1).</summary>
    internal static byte[] Format(int severity, string message) =>
        Encoding.UTF8.GetBytes($"<{8 + severity}>OllamaContinuity[{Environment.ProcessId}]: {message.Replace('\n', ' ')}");

    private static async Task<string?> SendDatagramAsync(string path, byte[] datagram, CancellationToken ct)
    {
        using var s = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        await s.ConnectAsync(new UnixDomainSocketEndPoint(path), ct).ConfigureAwait(false);
        await s.SendAsync(datagram, SocketFlags.None, ct).ConfigureAwait(false);
        return null;
    }
}
