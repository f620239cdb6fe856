using System.Diagnostics;
using System.Net;
using OllamaContinuity.Exposure;
using OllamaContinuity.Hardening;
using OllamaContinuity.Native;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Exposure;

/// <summary>
/// The real gateway process bound beyond loopback (--force) in a network namespace: the audit of its host credits it
/// as the authenticating reverse proxy, and a scan from another namespace, across a veth link, recognises it. Needs
/// root and ip(8), and the gateway laid out by the module's build; skipped (visibly) otherwise.
/// </summary>
public sealed class GatewayNamespaceTests
{
    private const string Token = "oc_test_netns_token_0123456789abcdef";

    private static string? GatewayDll()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "OllamaContinuity.sln")))
            {
                return new[] { "out/OllamaContinuity/Gateway", "out/Debug/OllamaContinuity/Gateway" }
                    .Select(d => Path.Combine(dir.FullName, d, ProcFs.GatewayAssembly)).Where(File.Exists).OrderByDescending(File.GetLastWriteTimeUtc).FirstOrDefault();
            }
        }

        return null;
    }

    [SkippableFact]
    public async Task A_gateway_bound_beyond_loopback_is_credited_by_the_audit_of_its_host_and_recognised_across_a_link()
    {
        Require.Root();
        Require.Tool("ip");
        var dll = GatewayDll();
        Skip.If(dll is null, "the gateway is not laid out: dotnet build src/OllamaContinuity -c Release");
        using var server = NetNs.Create("gws");
        using var client = NetNs.Create("gwc");
        NetNs.Link(server, ["10.247.3.1/29"], client, ["10.247.3.2/29"]);
        var dir = TestPaths.New("gateway-netns");
        Directory.CreateDirectory(Path.Combine(dir, "root", "proc"));
        var tokens = Path.Combine(dir, "tokens.json");
        await File.WriteAllTextAsync(tokens, $$"""{"tokens":[{"name":"app","token":"{{Token}}"}]}""");

        var psi = new ProcessStartInfo("ip") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in new[] { "netns", "exec", server.Name, OllamaContinuity.Gateway.GatewayControl.DotnetHost(), dll!, "--bind", "10.247.3.1", "--port", "0", "--force", "--tokens-file", tokens, "--log-path", Path.Combine(dir, "requests.jsonl") })
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["OLLAMA_URL"] = "http://127.0.0.1:9";
        psi.Environment["OLLAMACONTINUITY_STATE_DIR"] = Path.Combine(dir, "state");
        using var gateway = Process.Start(psi)!; // ip netns exec execs the gateway: same PID
        try
        {
            var port = await ListeningPortAsync(gateway);

            // The gateway's host as its own namespace sees it: /proc/net of the gateway's PID, and the process itself.
            var root = Path.Combine(dir, "root");
            File.CreateSymbolicLink(Path.Combine(root, "proc", "net"), $"/proc/{gateway.Id}/net");
            File.CreateSymbolicLink(Path.Combine(root, "proc", gateway.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)), $"/proc/{gateway.Id}");
            var audit = new LocalAudit(new LocalAuditOptions
            {
                Root = root, Live = true, Platform = HardeningPlatform.Linux, Runner = new RecordingCommandRunner(),
                SessionEnvironment = new Dictionary<string, string>(), GatewayStateFile = Path.Combine(dir, "none.json"),
                Firewall = new DelegateFirewallStatusProvider((_, _) => Task.FromResult(new FirewallStatus(true, "test rule.") { AllowFrom = ["10.247.3.0/29"] })),
                SocketFactory = server.CreateSocket, ProbeTimeout = TimeSpan.FromSeconds(3),
            });
            var f = (await audit.RunAsync()).ToList();

            var bind = Assert.Single(f, x => x.Check == ExposureChecks.GatewayBind);
            Assert.Equal((ExposureStatus.Pass, port), (bind.Status, bind.Port));
            Assert.Contains($"beyond loopback (10.247.3.1:{port}; process {gateway.Id}, OllamaContinuity.Gateway.dll --bind 10.247.3.1 --port 0", bind.Detail, StringComparison.Ordinal);
            var auth = Assert.Single(f, x => x.Check == ExposureChecks.GatewayAuth);
            Assert.Equal(ExposureStatus.Pass, auth.Status);
            Assert.Contains($"through 10.247.3.1:{port}, answered HTTP 401 with the gateway's marker", auth.Detail, StringComparison.Ordinal);
            Assert.Equal(ExposureStatus.Pass, Assert.Single(f, x => x.Check == ExposureChecks.GatewayFirewall).Status);
            var proxy = Assert.Single(f, x => x.Check == ExposureChecks.Authentication);
            Assert.Equal(ExposureStatus.Pass, proxy.Status);
            Assert.Contains($"only through the OllamaContinuity gateway on 10.247.3.1:{port}", proxy.Detail, StringComparison.Ordinal);

            // A scan of the link from the other namespace.
            var targets = (await ScanTargets.ExpandAsync(["10.247.3.0/29"], false, TimeSpan.FromSeconds(1))).Targets;
            var found = await ExposureScanner.ScanAsync(targets, new ExposureScanOptions { Port = port, Timeout = TimeSpan.FromSeconds(1), SocketFactory = client.CreateSocket });
            var row = Assert.Single(found);
            Assert.Equal(("10.247.3.1", ExposureStatus.Pass), (row.Target, row.Status));
            Assert.Contains("OllamaContinuity gateway answers on 10.247.3.1:" + port + " and asks for a client token", row.Detail, StringComparison.Ordinal);
        }
        finally
        {
            gateway.Kill(entireProcessTree: true);
            await gateway.WaitForExitAsync();
        }
    }

    /// <summary>The port of the gateway's "LISTENING http://host:port" line.</summary>
    private static async Task<int> ListeningPortAsync(Process p)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (await p.StandardOutput.ReadLineAsync(cts.Token) is { } line)
        {
            if (line.StartsWith("LISTENING ", StringComparison.Ordinal))
            {
                return new Uri(line["LISTENING ".Length..]).Port;
            }
        }

        throw new InvalidOperationException("The gateway exited before listening: " + await p.StandardError.ReadToEndAsync());
    }
}
