using System.Diagnostics;
using System.Net;
using OllamaContinuity.Contingency;
using OllamaContinuity.Drill;
using OllamaContinuity.Failover;
using OllamaContinuity.Native;
using OllamaContinuity.Tests.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Drill;

/// <summary>
/// Issue 9, items 15-17, with real nftables and iptables in network namespaces: a drill block is found and removed
/// by its own name whatever the marker says; the marker is machine-wide and names its owner; SIGTERM and SIGHUP
/// during a drill remove the block before the process ends. The host firewall is compared before and after.
/// </summary>
[Collection("Real firewalls")]
public sealed class DrillSignalTests
{
    private static readonly IPAddress[] Cloud = [IPAddress.Parse("10.232.7.2")];

    private static string Listing(NetNs ns, OutboundFirewall fw) =>
        fw == OutboundFirewall.Nftables ? ns.Exec("nft", "list", "ruleset").Output : ns.Exec("iptables", "-S").Output;

    private static string BlockName(OutboundFirewall fw) => fw == OutboundFirewall.Nftables ? OutboundBlocker.NftTable : OutboundBlocker.IptablesChain;

    public static TheoryData<OutboundFirewall, string> Markers() => new()
    {
        { OutboundFirewall.Nftables, "garbage" },
        { OutboundFirewall.Nftables, "bom" },
        { OutboundFirewall.Nftables, "wrong-firewall" },
        { OutboundFirewall.Nftables, "says-simulated" },
        { OutboundFirewall.Nftables, "none" },
        { OutboundFirewall.Iptables, "garbage" },
        { OutboundFirewall.Iptables, "wrong-firewall" },
        { OutboundFirewall.Iptables, "none" },
    };

    [SkippableTheory]
    [MemberData(nameof(Markers))]
    public async Task A_damaged_or_wrong_marker_still_removes_the_block_by_its_name(OutboundFirewall fw, string damage)
    {
        Require.Root();
        Require.Tool(fw == OutboundFirewall.Nftables ? "nft" : "iptables");
        var before = HostFirewallSnapshot.Take();
        var dir = TestPaths.New("drill-marker");
        Directory.CreateDirectory(dir);
        var marker = Path.Combine(dir, "drill-block.json");
        using (var ns = NetNs.Create("dm"))
        {
            var runner = new ProcessCommandRunner { Prefix = ["ip", "netns", "exec", ns.Name] };
            await new OutboundBlocker(runner, fw).ApplyAsync(Cloud, 443, default);
            Assert.Contains(BlockName(fw), Listing(ns, fw));
            var good = new DrillMarker { DrillId = "d1", Method = DrillBlockMethod.Firewall, Firewall = fw, CloudEndpoint = "https://cloud", BlockedOrigin = "https://cloud", User = "alice" };
            switch (damage)
            {
                case "garbage": File.WriteAllText(marker, "{\"drillId\": \"d1\", \"method\": "); break;
                case "bom": File.WriteAllBytes(marker, [0xEF, 0xBB, 0xBF, .. System.Text.Encoding.UTF8.GetBytes("[]")]); break;
                case "wrong-firewall": (good with { Firewall = fw == OutboundFirewall.Nftables ? OutboundFirewall.Iptables : OutboundFirewall.Nftables }).Write(marker); break;
                case "says-simulated": (good with { Method = DrillBlockMethod.Simulated }).Write(marker); break;
            }

            // Stop-FailoverDrill's call: sweep on. For a damaged marker the sweep happens even without it.
            var result = await DrillCleanup.RemoveLeftoverAsync(marker, runner, null, default, sweepFirewall: damage is "none" or "says-simulated");

            Assert.True(result.Found, result.Detail);
            Assert.True(result.Removed, result.Detail);
            Assert.DoesNotContain(BlockName(fw), Listing(ns, fw));
            Assert.DoesNotContain(BlockName(fw), fw == OutboundFirewall.Nftables ? ns.Exec("nft", "list", "tables").Output : ns.Exec("ip6tables", "-S").Output);
            Assert.False(File.Exists(marker));
            if (damage is "wrong-firewall" or "says-simulated")
            {
                Assert.Contains("alice", result.Owner);
            }
        }

        Directory.Delete(dir, true);
        Assert.Equal(before, HostFirewallSnapshot.Take());
    }

    [Fact]
    public async Task A_block_that_cannot_be_removed_is_never_reported_as_removed()
    {
        var dir = TestPaths.New("drill-marker");
        Directory.CreateDirectory(dir);
        var marker = Path.Combine(dir, "drill-block.json");
        File.WriteAllText(marker, "not json");
        // The table is there and deleting it fails (as for a non-root user).
        var runner = new RecordingCommandRunner().Answer("nft list table", 0, "table inet ollamacontinuity_drill {}").Answer("nft delete", 1, "", "Operation not permitted")
            .Answer("iptables", 127).Answer("ip6tables", 127);

        var result = await DrillCleanup.RemoveLeftoverAsync(marker, runner, null, default);

        Assert.True(result.Found);
        Assert.False(result.Removed);
        Assert.Contains("Operation not permitted", result.Detail);
        Assert.True(File.Exists(marker), "the marker must stay until the block is gone");
        Directory.Delete(dir, true);
    }

    [Fact]
    public void The_marker_is_machine_wide_for_an_administrator_and_names_its_owner()
    {
        var state = Environment.GetEnvironmentVariable(StatePaths.DirectoryVariable)!;
        Assert.Equal(Path.Combine(Path.GetFullPath(state), "Machine", "drill-block.json"), DrillMarkerPaths.Machine);
        Assert.Equal(DrillMarkerPaths.Machine, DrillMarkerPaths.Candidates[0]);
        Assert.Contains(DrillMarkerPaths.User, DrillMarkerPaths.Candidates);
        Assert.Equal(Environment.IsPrivilegedProcess ? DrillMarkerPaths.Machine : DrillMarkerPaths.User, DrillMarkerPaths.ForNewDrill());
        Assert.Equal(Environment.IsPrivilegedProcess ? DrillMarkerPaths.Machine : DrillMarkerPaths.User, new DrillOptions { Plan = new BackendPlan(null, []) }.MarkerPath);

        var m = new DrillMarker { DrillId = "abc", CloudEndpoint = "https://cloud", BlockedOrigin = "https://cloud" };
        Assert.Equal(Environment.UserName, m.User);
        Assert.Contains($"by {Environment.UserName} (process {Environment.ProcessId})", m.Describe());
    }

    [Fact]
    public async Task Another_users_marker_in_the_machine_location_is_found_and_says_whose_drill_it_is()
    {
        var path = DrillMarkerPaths.Machine;
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        try
        {
            new DrillMarker { DrillId = "bob1", Method = DrillBlockMethod.Simulated, CloudEndpoint = "https://cloud", BlockedOrigin = "https://cloud", User = "bob", ProcessId = 4242 }.Write(path);

            Assert.Equal(path, DrillMarkerPaths.FindExisting());
            var result = await DrillCleanup.RemoveLeftoverAsync(path, new RecordingCommandRunner(), null, default);

            Assert.True(result.Found && result.Removed);
            Assert.Equal("bob (process 4242)", result.Owner);
            Assert.Contains("drill bob1 by bob (process 4242)", result.Detail);
            Assert.Null(DrillMarkerPaths.FindExisting());
        }
        finally
        {
            File.Delete(path);
        }
    }

    [SkippableTheory]
    [InlineData("TERM", OutboundFirewall.Nftables)]
    [InlineData("HUP", OutboundFirewall.Nftables)]
    [InlineData("TERM", OutboundFirewall.Iptables)]
    public async Task A_signal_during_a_firewall_drill_removes_the_block_before_the_process_ends(string signal, OutboundFirewall fw)
    {
        Require.Root();
        Require.Tool(fw == OutboundFirewall.Nftables ? "nft" : "iptables");
        var before = HostFirewallSnapshot.Take();
        var dir = TestPaths.New("drill-signal");
        Directory.CreateDirectory(dir);
        var marker = Path.Combine(dir, "drill-block.json");
        using (var client = NetNs.Create("sc"))
        using (var cloudNs = NetNs.Create("sk"))
        {
            NetNs.Link(client, ["10.232.7.1/24"], cloudNs, ["10.232.7.2/24"]);
            await using var cloud = cloudNs.Run(() => FakeAiServer.Start(FakeApi.OpenAI, "cloud", Cloud[0]));
            await using var ollama = client.Run(() => FakeAiServer.Start(FakeApi.Ollama, "ollama"));

            // The engine-level drill in a child process inside the client namespace (its firewall tools run there too).
            var self = typeof(DrillSignalTests).Assembly.Location;
            var psi = new ProcessStartInfo("ip") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            // env --default-signal: a test run started under nohup (or by anything else that ignores SIGHUP) passes the
            // ignored SIGHUP down to the drill, where it rightly does nothing; the drill here starts as a login session would.
            foreach (var a in new[] { "netns", "exec", client.Name, "env", "--default-signal=HUP,TERM", "dotnet", self, "firewall-drill", cloud.ChatUri.ToString(), ollama.BaseUri.ToString(), marker, fw.ToString() })
            {
                psi.ArgumentList.Add(a);
            }

            using var child = Process.Start(psi)!;
            var stdout = child.StandardOutput.ReadToEndAsync();
            var stderr = child.StandardError.ReadToEndAsync();
            // The child writes "pid" next to the marker once the cloud is blocked (a file: no pipe buffering to wait on).
            var blockedFile = Path.Combine(dir, "blocked");
            var until = DateTime.UtcNow.AddSeconds(60);
            while (!File.Exists(blockedFile) && !child.HasExited && DateTime.UtcNow < until)
            {
                await Task.Delay(100);
            }

            Assert.True(File.Exists(blockedFile), "the child drill never blocked the cloud: " + (child.HasExited ? await stdout + await stderr : "timeout"));
            await Task.Delay(100);
            var pid = int.Parse(File.ReadAllText(blockedFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
            var during = Listing(client, fw);
            Assert.True(during.Contains(BlockName(fw), StringComparison.Ordinal), "no block during the drill: " + during);
            Assert.False(client.CanConnect(Cloud[0], cloud.Port, TimeSpan.FromSeconds(1)), "the cloud was reachable during the block");
            Assert.True(File.Exists(marker));

            Assert.Equal(0, NetNs.RunProcess(["kill", "-" + signal, pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]).ExitCode);
            using (var exit = new CancellationTokenSource(TimeSpan.FromSeconds(20)))
            {
                try
                {
                    await child.WaitForExitAsync(exit.Token);
                }
                catch (OperationCanceledException)
                {
                    // Say what the child was doing: its own output, and its threads' kernel wait channels.
                    var threads = string.Join(", ", Directory.EnumerateDirectories($"/proc/{pid}/task").Select(t =>
                        File.ReadAllText(Path.Combine(t, "comm")).Trim() + ":" + (File.Exists(Path.Combine(t, "wchan")) ? File.ReadAllText(Path.Combine(t, "wchan")) : "?")));
                    NetNs.RunProcess(["kill", "-KILL", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
                    Assert.Fail($"SIGHUP/SIGTERM did not end the drill within 20 s. Threads: {threads}. Output: {await stdout} {await stderr}");
                }
            }

            Assert.True(child.HasExited, "the signal did not end the process");

            Assert.DoesNotContain(BlockName(fw), Listing(client, fw));
            Assert.True(client.CanConnect(Cloud[0], cloud.Port), "the cloud is still blocked after the signal");
            Assert.False(File.Exists(marker), "the marker was left behind");
        }

        try { Directory.Delete(dir, true); } catch (IOException) { }
        Assert.Equal(before, HostFirewallSnapshot.Take());
    }

    /// <summary>The child: a one-minute firewall drill that writes its process id to "blocked" beside the marker once the cloud is blocked.</summary>
    internal static int ChildMain(string[] args)
    {
        var (cloudUrl, ollamaUrl, marker, fw) = (args[0], args[1], args[2], Enum.Parse<OutboundFirewall>(args[3]));
        using var engine = new FailoverEngine(new FailoverEngineOptions { Circuit = DrillTests.QuickCircuit });
        // Roomier than Harness.Fast: a fresh process JITs its first requests on a busy 2-core machine.
        var timeouts = new BackendTimeouts { Connect = TimeSpan.FromSeconds(5), FirstToken = TimeSpan.FromSeconds(5), Stall = TimeSpan.FromSeconds(5), Total = TimeSpan.FromSeconds(10) };
        var plan = Harness.Plan(Harness.Cloud(new Uri(cloudUrl), t: timeouts), Path.Combine(Path.GetDirectoryName(marker)!, "requests.jsonl"),
            BackendEndpoint.Ollama(ollamaUrl, "llama3.1:8b", timeouts));
        var options = new DrillOptions
        {
            Plan = plan, BlockMethod = DrillBlockMethod.Firewall, Firewall = fw, Duration = TimeSpan.FromSeconds(60), Interval = TimeSpan.FromMilliseconds(500),
            RecoveryTimeout = TimeSpan.FromSeconds(5), CheckAlert = false, MarkerPath = marker, Runner = new ProcessCommandRunner(),
        };
        var said = false;
        var progress = new SyncProgress<DrillProgress>(p =>
        {
            Console.Out.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {p.Phase}: {p.Status}");
            Console.Out.Flush();
            if (p.Phase == "Failover" && !said)
            {
                said = true;
                File.WriteAllText(Path.Combine(Path.GetDirectoryName(marker)!, "blocked"), Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
        });
        var report = new FailoverDrill(engine, null, () => null).RunAsync(options, progress).GetAwaiter().GetResult();
        Console.Out.WriteLine("ENDED " + report.Outcome + ": " + string.Join(" | ", report.Steps.Select(s => s.Name + " " + s.Outcome + " " + s.Detail)));
        return 0;
    }
}
