using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Gateway.Tests;

/// <summary>
/// The gateway under a service manager. Install-AiGateway's systemd unit is Type=notify: `systemctl start` returns once
/// the gateway says READY=1 on $NOTIFY_SOCKET, and a gateway that cannot listen fails the start instead of looking
/// started. The real gateway process runs here with a real datagram socket as $NOTIFY_SOCKET; its parent is a
/// stand-in for the service manager (a script named systemd, which is how .NET tells it was started by systemd).
/// </summary>
public sealed class ServiceManagerTests
{
    private static string GatewayDll => typeof(GatewayOptions).Assembly.Location;

    [SkippableFact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task Under_systemd_the_gateway_says_READY_once_it_listens_and_STOPPING_on_SIGTERM()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "The systemd notify protocol is Linux only.");
        var dir = TestPaths.New("svc");
        Directory.CreateDirectory(dir);
        try
        {
            var tokens = Path.Combine(dir, "tokens.json");
            await File.WriteAllTextAsync(tokens, """{"tokens":[{"name":"svc","token":"oc_service_manager_token_0123456789"}]}""");
            var socketPath = Path.Combine(dir, "notify.sock");
            using var notify = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
            notify.Bind(new UnixDomainSocketEndPoint(socketPath));

            // The stand-in manager: its process name (comm) is "systemd"; it starts the gateway as its child and waits.
            var manager = Path.Combine(dir, "systemd");
            await File.WriteAllTextAsync(manager, "#!/bin/sh\n\"$@\" &\necho $! > \"$0.child\"\nwait $!\nexit $?\n");
            File.SetUnixFileMode(manager, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

            var psi = new ProcessStartInfo(manager) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { GatewayControl.DotnetHost(), GatewayDll, "--port", "0", "--tokens-file", tokens })
            {
                psi.ArgumentList.Add(a);
            }

            psi.Environment["NOTIFY_SOCKET"] = socketPath;
            psi.Environment["OLLAMA_URL"] = "http://127.0.0.1:9";
            using var p = Process.Start(psi)!;
            var listening = GatewayProcess.Listening(p);
            try
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                var first = await ReceiveAsync(notify, cts.Token);
                Assert.Contains("READY=1", first);

                // READY came after the gateway listened: its /healthz answers now.
                var gateway = int.Parse(await File.ReadAllTextAsync(manager + ".child"), System.Globalization.CultureInfo.InvariantCulture);
                var line = await listening.WaitAsync(cts.Token);
                using (var http = new HttpClient())
                {
                    using var health = await http.GetAsync(line + "/healthz");
                    Assert.True(health.IsSuccessStatusCode, $"/healthz answered {(int)health.StatusCode}");
                }

                Assert.Equal(0, NetNs.RunProcess(["kill", "-TERM", gateway.ToString(System.Globalization.CultureInfo.InvariantCulture)]).ExitCode);
                var stopping = await ReceiveAsync(notify, cts.Token);
                Assert.Contains("STOPPING=1", stopping);
                await p.WaitForExitAsync(cts.Token);
                Assert.Equal(0, p.ExitCode);
            }
            finally
            {
                if (!p.HasExited)
                {
                    p.Kill(entireProcessTree: true);
                }
            }
        }
        finally
        {
            try { Directory.Delete(dir, true); } catch (IOException) { }
        }
    }

    [SkippableFact]
    public async Task Without_a_service_manager_the_gateway_sends_nothing_to_NOTIFY_SOCKET()
    {
        // A NOTIFY_SOCKET inherited from a shell that systemd did not start this gateway from must not be used.
        Skip.IfNot(OperatingSystem.IsLinux(), "The systemd notify protocol is Linux only.");

        var dir = TestPaths.New("svc-none");
        Directory.CreateDirectory(dir);
        try
        {
            var tokens = Path.Combine(dir, "tokens.json");
            await File.WriteAllTextAsync(tokens, """{"tokens":[{"name":"svc","token":"oc_service_manager_token_0123456789"}]}""");
            var socketPath = Path.Combine(dir, "notify.sock");
            using var notify = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
            notify.Bind(new UnixDomainSocketEndPoint(socketPath));
            var psi = new ProcessStartInfo(GatewayControl.DotnetHost()) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { GatewayDll, "--port", "0", "--tokens-file", tokens })
            {
                psi.ArgumentList.Add(a);
            }

            psi.Environment["NOTIFY_SOCKET"] = socketPath;
            psi.Environment["OLLAMA_URL"] = "http://127.0.0.1:9";
            using var p = Process.Start(psi)!;
            try
            {
                await GatewayProcess.Listening(p).WaitAsync(TimeSpan.FromSeconds(60));
                Assert.Equal(0, notify.Available);
                using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
                await Assert.ThrowsAnyAsync<OperationCanceledException>(() => ReceiveAsync(notify, cts.Token));
            }
            finally
            {
                p.Kill(entireProcessTree: true);
                await p.WaitForExitAsync();
            }
        }
        finally
        {
            try { Directory.Delete(dir, true); } catch (IOException) { }
        }
    }

    private static async Task<string> ReceiveAsync(Socket socket, CancellationToken cancel)
    {
        var buffer = new byte[4096];
        var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancel);
        return Encoding.UTF8.GetString(buffer, 0, n);
    }
}
