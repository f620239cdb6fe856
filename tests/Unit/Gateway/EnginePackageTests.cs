using System.Diagnostics;
using System.IO.Compression;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Gateway.Tests;

[CollectionDefinition("Engine package", DisableParallelization = true)]
public sealed class EnginePackageCollection
{
}

/// <summary>
/// The NuGet package <c>OllamaContinuity.Engine</c> as an application gets it: packed from the sources (as
/// <c>build.ps1 -Package</c> does), its metadata and files checked, then a throwaway console app made of the README's C#
/// example restores it from a local folder source, builds, and runs against fake cloud and Ollama servers on loopback.
/// Slow (a restore and a build), so one test, run alone. Skipped, saying why, when the packages cannot be restored here.
/// </summary>
[Collection("Engine package")]
public sealed class EnginePackageTests
{
    private static readonly string Root = FindRoot();

    [SkippableFact]
    public async Task The_packed_engine_is_consumable_an_app_built_from_the_README_example_fails_over_and_rescues_a_stream_through_IChatClient()
    {
        var work = TestPaths.New("engine-package");
        var feed = Path.Combine(work, "feed");
        var app = Path.Combine(work, "app");
        Directory.CreateDirectory(app);
        var version = Regex.Match(File.ReadAllText(Path.Combine(Root, "src/OllamaContinuity/OllamaContinuity.psd1")), @"ModuleVersion\s*=\s*'([^']+)'").Groups[1].Value;
        Assert.NotEmpty(version);

        // 1. Pack, as build.ps1 -Package does (the test project built the assemblies already), twice: same bytes.
        var nupkg = await PackAsync(feed);
        Assert.Equal($"OllamaContinuity.Engine.{version}.nupkg", Path.GetFileName(nupkg));
        Assert.Equal(File.ReadAllBytes(nupkg), File.ReadAllBytes(await PackAsync(Path.Combine(work, "feed-again"))));
        var example = ReadmeExample(File.ReadAllText(Path.Combine(Root, "README.md")));
        CheckPackage(nupkg, version, example);

        // 2. A console app of the README's example, referencing the package from the local folder source.
        await File.WriteAllTextAsync(Path.Combine(app, "Program.cs"), example);
        await File.WriteAllTextAsync(Path.Combine(app, "app.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="OllamaContinuity.Engine" Version="{version}" />
              </ItemGroup>
            </Project>
            """);
        // Nothing of this repository's (or /tmp's) build settings reaches the app.
        await File.WriteAllTextAsync(Path.Combine(app, "Directory.Build.props"), "<Project />");
        await File.WriteAllTextAsync(Path.Combine(app, "Directory.Build.targets"), "<Project />");
        await File.WriteAllTextAsync(Path.Combine(app, "nuget.config"), await NuGetConfigAsync(feed));

        // A folder of its own for the restored packages: this version of the package never lands in the machine's cache.
        var restore = await RunAsync(Dotnet, ["restore", "--packages", Path.Combine(work, "packages"), "--disable-build-servers", "-nodeReuse:false"], app, TimeSpan.FromMinutes(5));
        if (restore.Exit != 0)
        {
            // Our own package must always resolve from the folder; anything else missing means this machine cannot restore offline.
            Assert.DoesNotMatch(@"NU110[1-3].*OllamaContinuity\.Engine", restore.Output);
            Skip.If(Regex.IsMatch(restore.Output, "NU1101|NU1102|NU1301|NU1302|NU1801"), "the app's dependencies cannot be restored on this machine (no package source reachable and not in the local cache): " +
                string.Join(" | ", restore.Output.Split('\n').Where(l => l.Contains("error", StringComparison.OrdinalIgnoreCase)).Take(2)).Trim());
            Assert.Fail("dotnet restore failed:\n" + restore.Output);
        }

        var build = await RunAsync(Dotnet, ["build", "--no-restore", "-c", "Release", "--nologo", "--disable-build-servers", "-nodeReuse:false", "-o", Path.Combine(work, "bin")], app, TimeSpan.FromMinutes(5));
        Assert.True(build.Exit == 0, "the README example does not build against the package:\n" + build.Output);

        // 3. Run it against the fakes: the plain call meets a cloud outage (503, retried once), the streamed one a
        //    cloud stream cut after three words.
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        cloud.Script = _ => cloud.Requests.Last().Json?["stream"]?.GetValue<bool>() == true ? new FaultSpec(FaultKind.CutAfterWords) { Words = 3 } : FaultSpec.Http(503);
        var log = Path.Combine(work, "requests.jsonl");
        var env = new Dictionary<string, string?>
        {
            ["CLOUD_API_URL"] = cloud.ChatUri.ToString(),
            ["CLOUD_API_KEY"] = "sk-package-test-0123456789",
            ["CLOUD_MODEL"] = "cloud-model",
            ["OLLAMA_URL"] = ollama.BaseUri.ToString(),
            ["OLLAMA_MODEL"] = "llama3.1:8b",
            ["OLLAMACONTINUITY_LOG_PATH"] = log,
            ["OLLAMACONTINUITY_STATE_DIR"] = Path.Combine(work, "state"),
        };
        foreach (var name in new[] { "CLOUD_PROVIDER", "CLOUD_TIMEOUT", "OLLAMA_TIMEOUT", "CONNECT_TIMEOUT", "FIRST_TOKEN_TIMEOUT", "AI_CONTINGENCY_MODE", "OLLAMACONTINUITY_UNREADABLE_STATE" })
        {
            env[name] = null;
        }

        var run = await RunAsync(Dotnet, [Path.Combine(work, "bin", "app.dll")], app, TimeSpan.FromSeconds(60), env, captureStderr: false);
        Assert.True(run.Exit == 0, "the app failed:\n" + run.Output);
        var lines = run.Output.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 3, "expected three lines:\n" + run.Output);

        // The plain answer failed over; the stream is the cloud's first words continued by Ollama, one answer.
        Assert.Equal("Ollama (failed over: ServerError): ollama: reply to Summarise the incident in one line.", lines[0]);
        var streamed = lines[1];
        Assert.StartsWith("cloud: reply", streamed);
        Assert.EndsWith("ollama: reply to Now the details, streamed.", streamed);
        Assert.DoesNotContain("cloud: reply to Now the details", streamed); // the cut happened
        Assert.Matches(@"^Ollama \(failed over: \w+\): " + Regex.Escape(streamed) + "$", lines[2]);
        var continuation = ollama.Requests.Last().Json!["messages"]!.AsArray();
        Assert.Equal("assistant", (string?)continuation[^1]!["role"]);
        Assert.Equal(streamed, (string?)continuation[^1]!["content"] + "ollama: reply to Now the details, streamed.");
        Assert.Equal(3, cloud.Hits);

        // The same request log as Invoke-AiRequest: one line per request, with the workflow and every attempt.
        var entries = File.ReadAllLines(log).Select(l => JsonNode.Parse(l)!).ToArray();
        Assert.Equal(2, entries.Length);
        Assert.All(entries, e => Assert.Equal("billing", (string?)e["workflow"]));
        Assert.All(entries, e => Assert.Equal("Ollama", (string?)e["backend"]));
        Assert.Equal("ServerError", (string?)entries[0]["failoverReason"]);
        Assert.Equal(["Cloud", "Cloud", "Ollama"], entries[0]["attempts"]!.AsArray().Select(a => (string?)a!["backend"]));
        Assert.Equal(["Cloud", "Ollama"], entries[1]["attempts"]!.AsArray().Select(a => (string?)a!["backend"]));
        Assert.DoesNotContain("sk-package-test", File.ReadAllText(log));
    }

    private static void CheckPackage(string nupkg, string version, string example)
    {
        using var zip = ZipFile.OpenRead(nupkg);
        var names = zip.Entries.Select(e => e.FullName).ToArray();
        foreach (var f in new[] { "lib/net8.0/OllamaContinuity.Engine.dll", "lib/net8.0/OllamaContinuity.Engine.xml", "lib/net8.0/OllamaContinuity.Engine.AI.dll", "lib/net8.0/OllamaContinuity.Engine.AI.xml", "README.md" })
        {
            Assert.Contains(f, names);
        }

        Assert.DoesNotContain(names, n => n.StartsWith("lib/", StringComparison.Ordinal) && !n.StartsWith("lib/net8.0/OllamaContinuity.Engine", StringComparison.Ordinal));

        XNamespace ns = "http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd";
        var nuspec = XDocument.Load(zip.GetEntry("OllamaContinuity.Engine.nuspec")!.Open());
        var meta = nuspec.Root!.Element(ns + "metadata")!;
        string? Meta(string name) => meta.Element(ns + name)?.Value;
        Assert.Equal("OllamaContinuity.Engine", Meta("id"));
        Assert.Equal(version, Meta("version"));
        Assert.False(string.IsNullOrWhiteSpace(Meta("authors")));
        Assert.Equal("expression", meta.Element(ns + "license")?.Attribute("type")?.Value);
        Assert.Equal("MIT", Meta("license")); // the module's licence (its manifest's LicenseUri is MIT)
        Assert.Contains("MIT", File.ReadAllText(Path.Combine(Root, "src/OllamaContinuity/OllamaContinuity.psd1")));
        Assert.Equal("README.md", Meta("readme"));
        Assert.Contains("IChatClient", Meta("description"));

        // Dependencies: the AI abstractions at the version the client is built with, and the engine's own ones.
        var deps = meta.Descendants(ns + "dependency").ToDictionary(d => d.Attribute("id")!.Value, d => d.Attribute("version")!.Value);
        var expected = PackageReferences("src/OllamaContinuity.Engine.AI/OllamaContinuity.Engine.AI.csproj")
            .Concat(PackageReferences("src/OllamaContinuity.Engine/OllamaContinuity.Engine.csproj"))
            .DistinctBy(p => p.Id).ToDictionary(p => p.Id, p => p.Version);
        Assert.Equal(expected.OrderBy(p => p.Key), deps.OrderBy(p => p.Key));
        Assert.Contains("Microsoft.Extensions.AI.Abstractions", deps.Keys);

        // The engine references no PowerShell: an application never needs one.
        foreach (var dll in new[] { "lib/net8.0/OllamaContinuity.Engine.dll", "lib/net8.0/OllamaContinuity.Engine.AI.dll" })
        {
            var refs = AssemblyReferences(zip.GetEntry(dll)!);
            Assert.DoesNotContain(refs, r => r.StartsWith("System.Management.Automation", StringComparison.Ordinal) || r.StartsWith("Microsoft.PowerShell", StringComparison.Ordinal));
        }

        // The package's own README shows the same example as this repository's README.
        using var readme = new StreamReader(zip.GetEntry("README.md")!.Open());
        Assert.Contains(example.Trim(), readme.ReadToEnd().Replace("\r\n", "\n", StringComparison.Ordinal));
    }

    private static IEnumerable<(string Id, string Version)> PackageReferences(string csproj) =>
        XDocument.Load(Path.Combine(Root, csproj)).Descendants("PackageReference")
            .Where(p => p.Attribute("PrivateAssets")?.Value != "all")
            .Select(p => (p.Attribute("Include")!.Value, p.Attribute("Version")!.Value));

    private static string[] AssemblyReferences(ZipArchiveEntry entry)
    {
        using var ms = new MemoryStream();
        using (var s = entry.Open())
        {
            s.CopyTo(ms);
        }

        ms.Position = 0;
        using var pe = new PEReader(ms);
        var md = pe.GetMetadataReader();
        return md.AssemblyReferences.Select(h => md.GetString(md.GetAssemblyReference(h).Name)).ToArray();
    }

    /// <summary>The first C# block of the README's "In process for .NET" section: the example users copy.</summary>
    internal static string ReadmeExample(string readme)
    {
        var section = readme.IndexOf("### In process for .NET", StringComparison.Ordinal);
        Assert.True(section >= 0, "README.md has no 'In process for .NET' section");
        var start = readme.IndexOf("```csharp\n", section, StringComparison.Ordinal) + "```csharp\n".Length;
        var end = readme.IndexOf("\n```", start, StringComparison.Ordinal);
        return readme[start..end] + "\n";
    }

    private static async Task<string> PackAsync(string output)
    {
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";
        var r = await RunAsync(Dotnet, ["pack", Path.Combine(Root, "src/OllamaContinuity.Engine.AI/OllamaContinuity.Engine.AI.csproj"), "-c", configuration, "--no-build", "--nologo",
            "-o", output, "-p:DeterministicTimestamp=1767225600", "--disable-build-servers", "-nodeReuse:false"], Root, TimeSpan.FromMinutes(3));
        Assert.True(r.Exit == 0, "dotnet pack failed:\n" + r.Output);
        return Assert.Single(Directory.GetFiles(output, "*.nupkg"));
    }

    /// <summary>Our folder for OllamaContinuity.*, then the machine's package cache (offline), then the machine's configured sources.</summary>
    private static async Task<string> NuGetConfigAsync(string feed)
    {
        var cache = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p ? p : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var list = await RunAsync(Dotnet, ["nuget", "list", "source", "--format", "short"], Root, TimeSpan.FromSeconds(60));
        var sources = list.Output.Split('\n', StringSplitOptions.TrimEntries)
            .Where(l => l.StartsWith("E ", StringComparison.Ordinal)).Select(l => l[2..].Trim()).Where(s => s.Length > 0).Distinct().ToList();
        var sb = new StringBuilder("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<configuration>\n  <packageSources>\n    <clear />\n");
        sb.Append($"    <add key=\"local-feed\" value=\"{feed}\" />\n");
        if (Directory.Exists(cache))
        {
            sb.Append($"    <add key=\"machine-cache\" value=\"{cache}\" />\n");
        }

        for (var i = 0; i < sources.Count; i++)
        {
            sb.Append($"    <add key=\"machine-{i}\" value=\"{System.Security.SecurityElement.Escape(sources[i])}\" />\n");
        }

        sb.Append("  </packageSources>\n  <packageSourceMapping>\n");
        sb.Append("    <packageSource key=\"local-feed\"><package pattern=\"OllamaContinuity.*\" /></packageSource>\n");
        if (Directory.Exists(cache))
        {
            sb.Append("    <packageSource key=\"machine-cache\"><package pattern=\"*\" /></packageSource>\n");
        }

        for (var i = 0; i < sources.Count; i++)
        {
            sb.Append($"    <packageSource key=\"machine-{i}\"><package pattern=\"*\" /></packageSource>\n");
        }

        sb.Append("  </packageSourceMapping>\n</configuration>\n");
        return sb.ToString();
    }

    private static string Dotnet => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } h && File.Exists(h) ? h : "dotnet";

    private static async Task<(int Exit, string Output)> RunAsync(string file, string[] args, string dir, TimeSpan timeout, IDictionary<string, string?>? env = null, bool captureStderr = true)
    {
        var psi = new ProcessStartInfo(file, args)
        {
            WorkingDirectory = dir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        psi.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        psi.Environment["DOTNET_CLI_UI_LANGUAGE"] = "en";
        foreach (var (k, v) in env ?? new Dictionary<string, string?>())
        {
            if (v is null)
            {
                psi.Environment.Remove(k);
            }
            else
            {
                psi.Environment[k] = v;
            }
        }

        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{Path.GetFileName(file)} {string.Join(' ', args)} did not finish within {timeout.TotalSeconds} s:\n{await stdout}\n{await stderr}");
        }

        var output = await stdout;
        var errors = await stderr;
        return (p.ExitCode, captureStderr ? output + errors : (p.ExitCode == 0 ? output : output + "\n" + errors));
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "OllamaContinuity.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("The repository root (OllamaContinuity.sln) was not found above " + AppContext.BaseDirectory);
    }
}
