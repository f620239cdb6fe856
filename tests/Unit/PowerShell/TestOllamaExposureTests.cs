using System.Management.Automation;
using System.Net;
using System.Net.Sockets;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.PowerShellTests;

/// <summary>Test-OllamaExposure as a user calls it: the local audit of a fixture tree (-Root), and the network probe of loopback fakes.</summary>
public sealed class TestOllamaExposureTests : IAsyncLifetime
{
    private const string Id = ",OllamaContinuity.Commands.TestOllamaExposureCommand";
    private readonly string _root = TestPaths.New("ps-audit");
    private ModuleSession _s = null!;
    private FakeAiServer _ollama = null!;

    public Task InitializeAsync()
    {
        _s = new ModuleSession();
        _ollama = FakeAiServer.Start(FakeApi.Ollama);
        _ollama.Tags = ["llama3.1:8b", "codellama:13b"];
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        _s.Dispose();
        await _ollama.DisposeAsync();
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    private void Write(string path, string content)
    {
        var full = Path.Combine(_root, path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        File.WriteAllText(full, content);
    }

    /// <summary>A host whose Ollama listens on 0.0.0.0 (the fake's port; its loopback side answers the probe) with a wildcard origin.</summary>
    private void ExposedHost()
    {
        Write("etc/systemd/system/ollama.service", "[Service]\nExecStart=/usr/local/bin/ollama serve\nUser=ollama\nEnvironment=\"OLLAMA_HOST=0.0.0.0\" \"OLLAMA_ORIGINS=*\"\n");
        Write("proc/net/tcp", "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
            $"   0: 00000000:{_ollama.Port:X4} 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 1 1 0 100 0 0 10 0\n");
    }

    private void HardenedHost()
    {
        Write("etc/systemd/system/ollama.service", "[Service]\nExecStart=/usr/local/bin/ollama serve\nUser=ollama\nEnvironment=\"OLLAMA_HOST=127.0.0.1:11434\" \"OLLAMA_ORIGINS=https://app.example.com\" OLLAMA_NO_WEBSERVER=1\n");
        Write("proc/net/tcp", "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
            "   0: 0100007F:2CAA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 1 1 0 100 0 0 10 0\n");
    }

    private Dictionary<string, object?> Vars => new() { ["root"] = _root, ["port"] = _ollama.Port };

    [Fact]
    public void Local_audit_of_a_root_gives_the_eight_checklist_items_as_flat_typed_findings()
    {
        ExposedHost();
        var result = _s.Invoke("Test-OllamaExposure -Root $root -Port $port", Vars);
        Assert.Equal(["BindAddress", "Firewall", "Origins", "WebUI", "ServiceUser", "Authentication", "Logs", "DiskEncryption"], result.Select(r => (string)r.Properties["Check"].Value));
        Assert.All(result, r => Assert.Equal("OllamaContinuity.Exposure.ExposureFinding", r.BaseObject.GetType().FullName));
        Assert.All(result, r => Assert.Equal(_root, r.Properties["Target"].Value));
        var auth = result.Single(r => (string)r.Properties["Check"].Value == "Authentication");
        Assert.Equal("Fail", auth.Properties["Status"].Value.ToString());
        Assert.Equal("llama3.1:8b, codellama:13b", auth.Properties["Models"].Value);
        Assert.Equal("Set-OllamaHardening -BindAddress 127.0.0.1:11434 -Restart", auth.Properties["Remediation"].Value);
        Assert.Equal("Fail", result.Single(r => (string)r.Properties["Check"].Value == "Origins").Properties["Status"].Value.ToString());
        // Flat: every property is a string, number, enum or timestamp, so Export-Csv shows values, not type names.
        Assert.All(auth.Properties.Where(p => p.MemberType == PSMemberTypes.Property), p =>
            Assert.True(p.Value is string or int or DateTimeOffset || p.Value?.GetType().IsEnum == true, p.Name));
        Assert.NotEmpty(_s.Streams!.Progress);
    }

    [Fact]
    public void Quiet_returns_one_boolean_meaning_no_Fail()
    {
        ExposedHost();
        var exposed = Assert.Single(_s.Invoke("Test-OllamaExposure -Root $root -Port $port -Quiet", Vars));
        Assert.False((bool)exposed.BaseObject);

        Directory.Delete(_root, recursive: true);
        HardenedHost();
        var hardened = Assert.Single(_s.Invoke("Test-OllamaExposure -Root $root -Quiet", Vars));
        Assert.True((bool)hardened.BaseObject);
    }

    [Fact]
    public void Network_probe_reports_the_exposed_Ollama_with_version_and_models()
    {
        var result = _s.Invoke("'127.0.0.1', '127.0.0.0/30' | Test-OllamaExposure -Port $port -TimeoutMs 1000", Vars);
        var f = Assert.Single(result);
        Assert.Equal(("NetworkExposure", "Fail", "127.0.0.1"), ((string)f.Properties["Check"].Value, f.Properties["Status"].Value.ToString(), (string)f.Properties["Target"].Value));
        Assert.Equal(("0.33.0", "llama3.1:8b, codellama:13b", 2), ((string)f.Properties["Version"].Value, (string)f.Properties["Models"].Value, (int)f.Properties["ModelCount"].Value));
        Assert.StartsWith("[Fail] NetworkExposure 127.0.0.1:" + _ollama.Port, f.ToString(), StringComparison.Ordinal);
        Assert.Contains(_s.Streams!.Progress, p => p.RecordType == ProgressRecordType.Completed);

        Assert.False((bool)Assert.Single(_s.Invoke("Test-OllamaExposure 127.0.0.1 -Port $port -TimeoutMs 1000 -Quiet", Vars)).BaseObject);
    }

    [Fact]
    public void IncludeClosed_adds_a_Pass_row_for_silent_addresses()
    {
        var closed = FreePort();
        var result = _s.Invoke("Test-OllamaExposure 127.0.0.1, 127.0.0.2 -Port $closed -TimeoutMs 500 -IncludeClosed", new Dictionary<string, object?> { ["closed"] = closed });
        Assert.Equal(2, result.Count);
        Assert.All(result, r => Assert.Equal("Pass", r.Properties["Status"].Value.ToString()));
        Assert.True((bool)Assert.Single(_s.Invoke("Test-OllamaExposure 127.0.0.1 -Port $closed -TimeoutMs 500 -Quiet", new Dictionary<string, object?> { ["closed"] = closed })).BaseObject);
    }

    [Theory]
    [InlineData("10.0.0.0/8", "TargetTooLarge")]
    [InlineData("0.0.0.0/0", "TargetTooLarge")]
    [InlineData("10.0.0.0/19", "TargetTooLarge")]
    [InlineData("'10.0.0.0/33'", "InvalidTarget")]
    [InlineData("'$(id)'", "InvalidTarget")]
    public void Unsafe_targets_are_refused_before_any_probe(string target, string errorId)
    {
        var result = _s.Invoke($"try {{ Test-OllamaExposure -Target {target}; 'after' }} catch {{ $_ }}");
        var e = (ErrorRecord)Assert.Single(result).BaseObject;
        Assert.Equal(errorId + Id, e.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.InvalidArgument, e.CategoryInfo.Category);
        Assert.Empty(_s.Streams!.Progress); // nothing was probed
    }

    [Fact]
    public void Validation_of_numbers_and_a_missing_root()
    {
        var result = _s.Invoke("try { Test-OllamaExposure -Target 127.0.0.1 -ThrottleLimit 0 } catch { $_ }");
        Assert.Equal("ParameterArgumentValidationError" + Id, ((ErrorRecord)Assert.Single(result).BaseObject).FullyQualifiedErrorId);
        var missing = _s.Invoke("try { Test-OllamaExposure -Root \"$root/nope\" } catch { $_ }", Vars);
        Assert.Equal("RootNotFound" + Id, ((ErrorRecord)Assert.Single(missing).BaseObject).FullyQualifiedErrorId);
    }

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }
}
