// The seam: every call that needs Windows itself. Tests under mono subclass it (test host).
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.AccessControl;
using System.Security.Principal;
using System.ServiceProcess;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading;
using Microsoft.Win32;

namespace Pushinstall.Agent
{
    /// <summary>A system tool's exit code and its output (stdout and stderr, one line).</summary>
    public class ToolResult
    {
        public int ExitCode;
        public string Output;
    }

    /// <summary>A scheduled task's state as the Task Scheduler reports it.</summary>
    public class ScheduledTaskStatus
    {
        /// <summary>TASK_STATE: 2 queued, 3 ready (no instance running), 4 running.</summary>
        public int State;

        /// <summary>LastTaskResult: the exit code, or SCHED_S_TASK_HAS_NOT_RUN before a run.</summary>
        public int LastResult;
    }

    /// <summary>Windows API calls; virtual so that a test host can stand in for Windows.</summary>
    public class WindowsApi
    {
        private const string SystemSid = "S-1-5-18";
        private const string AdministratorsSid = "S-1-5-32-544";

        /// <summary>How long download run_as: system sleeps between looks at its task.</summary>
        public int TaskPollMilliseconds = 250;

        public virtual RegistryKey OpenBaseKey(RegistryHive hive, string view, ref string subKey)
        {
            return RegistryKey.OpenBaseKey(hive, view == "32" ? RegistryView.Registry32 : RegistryView.Registry64);
        }

        /// <summary>Free bytes on the drive of `path`; -1 when it is not a drive path.</summary>
        public virtual long FreeBytes(string path)
        {
            string root = Path.GetPathRoot(path) ?? "";
            if (!Regex.IsMatch(root, @"^[A-Za-z]:\\$"))
            {
                return -1;
            }
            DriveInfo drive = new DriveInfo(root);
            return drive.IsReady ? drive.AvailableFreeSpace : -1;
        }

        public virtual DriveInfo Drive(string letter)
        {
            foreach (DriveInfo info in DriveInfo.GetDrives())
            {
                if (string.Equals(info.Name, letter + @":\", StringComparison.OrdinalIgnoreCase))
                {
                    return info;
                }
            }
            return null;
        }

        public virtual string DriversDirectory()
        {
            return Path.Combine(Environment.SystemDirectory, "drivers");
        }

        /// <summary>SYSTEM and BUILTIN\Administrators by SID (names differ by language),
        /// inheritance off.</summary>
        public virtual void ProtectSecretFile(string path)
        {
            FileSecurity acl = new FileSecurity();
            acl.SetAccessRuleProtection(true, false);
            foreach (string sid in new string[] { SystemSid, AdministratorsSid })
            {
                acl.AddAccessRule(new FileSystemAccessRule(new SecurityIdentifier(sid),
                    FileSystemRights.FullControl, AccessControlType.Allow));
            }
            File.SetAccessControl(path, acl);
        }

        /// <summary>The agent cache's folder: SYSTEM and BUILTIN\Administrators by SID, full
        /// control inherited by what it holds, inheritance from the parent off.</summary>
        public virtual void ProtectDirectory(string path)
        {
            DirectorySecurity acl = new DirectorySecurity();
            acl.SetAccessRuleProtection(true, false);
            foreach (string sid in new string[] { SystemSid, AdministratorsSid })
            {
                acl.AddAccessRule(new FileSystemAccessRule(new SecurityIdentifier(sid),
                    FileSystemRights.FullControl, InheritanceFlags.ContainerInherit | InheritanceFlags.ObjectInherit,
                    PropagationFlags.None, AccessControlType.Allow));
            }
            Directory.SetAccessControl(path, acl);
        }

        public virtual bool IsSecretFileProtected(string path)
        {
            FileSecurity acl = File.GetAccessControl(path);
            if (!acl.AreAccessRulesProtected)
            {
                return false;
            }
            bool system = false, administrators = false;
            foreach (FileSystemAccessRule rule in acl.GetAccessRules(true, true, typeof(SecurityIdentifier)))
            {
                string sid = rule.IdentityReference.Value;
                if (sid == SystemSid)
                {
                    system = true;
                }
                else if (sid == AdministratorsSid)
                {
                    administrators = true;
                }
                else
                {
                    return false;
                }
            }
            return system && administrators;
        }

        [StructLayout(LayoutKind.Sequential, CharSet = CharSet.Unicode)]
        private class NetResource
        {
            public int Scope;
            public int Type;
            public int DisplayType;
            public int Usage;
            public string LocalName;
            public string RemoteName;
            public string Comment;
            public string Provider;
        }

        [DllImport("mpr.dll", CharSet = CharSet.Unicode)]
        private static extern int WNetAddConnection2(NetResource resource, string password, string username, int flags);

        [DllImport("mpr.dll", CharSet = CharSet.Unicode)]
        private static extern int WNetCancelConnection2(string name, int flags, bool force);

        public virtual int ConnectShare(string remoteName, string username, string password)
        {
            NetResource resource = new NetResource();
            resource.Type = 1;
            resource.RemoteName = remoteName;
            return WNetAddConnection2(resource, password, username, 0);
        }

        public virtual int DisconnectShare(string remoteName)
        {
            return WNetCancelConnection2(remoteName, 0, true);
        }

        /// <summary>Installers start children (msiexec): end the whole tree, then the process.</summary>
        public virtual void KillProcessTree(Process process)
        {
            RunTool("taskkill.exe", new string[] { "/PID", process.Id.ToString(), "/T", "/F" });
            try
            {
                if (!process.HasExited)
                {
                    process.Kill();
                }
            }
            catch (InvalidOperationException)
            {
            }
            catch (System.ComponentModel.Win32Exception)
            {
            }
        }

        [StructLayout(LayoutKind.Sequential)]
        private struct TimeOfDay
        {
            public long BootTime;
            public long CurrentTime;
            public long TimeZoneBias;
            public uint TimeZoneId;
            public uint Reserved;
            public ulong BootTimeBias;
            public ulong SleepTimeBias;
        }

        [DllImport("ntdll.dll")]
        private static extern int NtQuerySystemInformation(int infoClass, ref TimeOfDay info, int size, out int returned);

        /// <summary>The boot time as the kernel keeps it (what Win32_OperatingSystem shows):
        /// stable between calls, unlike now minus uptime.</summary>
        public virtual DateTime BootTime()
        {
            TimeOfDay info = new TimeOfDay();
            int returned;
            int status = NtQuerySystemInformation(3, ref info, Marshal.SizeOf(typeof(TimeOfDay)), out returned);
            if (status != 0)
            {
                throw new OpException("Exception", "NtQuerySystemInformation failed: 0x" + status.ToString("x8"));
            }
            return DateTime.FromFileTimeUtc(info.BootTime);
        }

        /// <summary>The SCCM client's own answer (opt-in: WMI root\ccm\ClientSDK).</summary>
        public virtual bool SccmRebootPending()
        {
            ToolResult result = RunTool("powershell.exe", new string[] {
                "-NoProfile", "-NonInteractive", "-Command",
                "$r = Invoke-WmiMethod -Namespace root\\ccm\\ClientSDK -Class CCM_ClientUtilities -Name DetermineIfRebootPending; [int]($r.RebootPending -or $r.IsHardRebootPending)" });
            return result.ExitCode == 0 && result.Output.Trim().EndsWith("1");
        }

        public virtual ServiceInfo FindService(string name)
        {
            ServiceController[] services = ServiceController.GetServices();
            ServiceController found = null;
            foreach (ServiceController service in services)
            {
                if (string.Equals(service.ServiceName, name, StringComparison.OrdinalIgnoreCase))
                {
                    found = service;
                    break;
                }
            }
            if (found == null)
            {
                foreach (ServiceController service in services)
                {
                    if (string.Equals(service.DisplayName, name, StringComparison.OrdinalIgnoreCase))
                    {
                        found = service;
                        break;
                    }
                }
            }
            if (found == null)
            {
                return null;
            }
            ServiceInfo info = new ServiceInfo();
            info.Name = found.ServiceName;
            info.DisplayName = found.DisplayName;
            info.Status = found.Status.ToString();
            return info;
        }

        [StructLayout(LayoutKind.Sequential)]
        private struct DelayedAutoStartInfo
        {
            public bool DelayedAutostart;
        }

        [DllImport("advapi32.dll", SetLastError = true)]
        private static extern IntPtr OpenSCManager(string machine, string database, int access);

        [DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        private static extern IntPtr OpenService(IntPtr manager, string name, int access);

        [DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        private static extern bool ChangeServiceConfig2(IntPtr service, int infoLevel, ref DelayedAutoStartInfo info);

        [DllImport("advapi32.dll")]
        private static extern bool CloseServiceHandle(IntPtr handle);

        /// <summary>Through the service control manager, so it counts at once (writing the
        /// registry would only count after a reboot): sc.exe config for the start type, and
        /// ChangeServiceConfig2 (SERVICE_CONFIG_DELAYED_AUTO_START_INFO) for the delayed flag.</summary>
        public virtual void SetStartMode(string name, string mode)
        {
            string sc = mode == "Automatic" ? "auto" : mode == "AutomaticDelayed" ? "delayed-auto"
                : mode == "Manual" ? "demand" : "disabled";
            ToolResult result = RunTool("sc.exe", new string[] { "config", name, "start=", sc });
            if (result.ExitCode != 0)
            {
                throw new OpException("ServiceFailed", "sc.exe config " + name + " failed (" + result.ExitCode + "): " + result.Output);
            }
            if (mode != "Automatic")
            {
                return;
            }
            IntPtr manager = OpenSCManager(null, null, 0x0001);
            IntPtr service = manager == IntPtr.Zero ? IntPtr.Zero : OpenService(manager, name, 0x0002);
            try
            {
                DelayedAutoStartInfo info = new DelayedAutoStartInfo();
                info.DelayedAutostart = false;
                if (service == IntPtr.Zero || !ChangeServiceConfig2(service, 3, ref info))
                {
                    throw new OpException("ServiceFailed", "ChangeServiceConfig2 " + name + " failed: "
                                          + new System.ComponentModel.Win32Exception().Message);
                }
            }
            finally
            {
                if (service != IntPtr.Zero)
                {
                    CloseServiceHandle(service);
                }
                if (manager != IntPtr.Zero)
                {
                    CloseServiceHandle(manager);
                }
            }
        }

        public virtual void SetServiceState(string name, bool running, int timeoutS)
        {
            using (ServiceController service = new ServiceController(name))
            {
                ServiceControllerStatus target = running ? ServiceControllerStatus.Running : ServiceControllerStatus.Stopped;
                try
                {
                    if (running && service.Status == ServiceControllerStatus.Paused)
                    {
                        service.Continue();
                    }
                    else if (running && service.Status != ServiceControllerStatus.StartPending)
                    {
                        service.Start();
                    }
                    else if (!running && service.Status != ServiceControllerStatus.StopPending)
                    {
                        service.Stop();
                    }
                    service.WaitForStatus(target, TimeSpan.FromSeconds(timeoutS));
                }
                catch (Exception error)
                {
                    Exception inner = error;
                    while (inner.InnerException != null)
                    {
                        inner = inner.InnerException;
                    }
                    service.Refresh();
                    throw new OpException("ServiceFailed", name + " did not reach " + target + " within "
                                          + timeoutS + " s (status " + service.Status + "): " + inner.Message);
                }
            }
        }

        /// <summary>True when a named kernel mutex exists (one we may not open exists too).</summary>
        public virtual bool NamedMutexExists(string name)
        {
            Mutex mutex;
            try
            {
                if (!Mutex.TryOpenExisting(name, out mutex))
                {
                    return false;
                }
            }
            catch (UnauthorizedAccessException)
            {
                return true;
            }
            mutex.Dispose();
            return true;
        }

        /// <summary>The process names (no ".exe") of every process but this one.</summary>
        public virtual List<string> OtherProcessNames()
        {
            List<string> names = new List<string>();
            int own;
            using (Process current = Process.GetCurrentProcess())
            {
                own = current.Id;
            }
            foreach (Process process in Process.GetProcesses())
            {
                using (process)
                {
                    try
                    {
                        if (process.Id != own)
                        {
                            names.Add(process.ProcessName);
                        }
                    }
                    catch (InvalidOperationException)
                    {
                        // exited meanwhile
                    }
                }
            }
            return names;
        }

        /// <summary>Where a SYSTEM task's directory is made (%ProgramData%).</summary>
        public virtual string TaskRoot()
        {
            return Environment.GetFolderPath(Environment.SpecialFolder.CommonApplicationData);
        }

        /// <summary>A new directory whose ACL, set as it is created, grants only SYSTEM and
        /// BUILTIN\Administrators (inherited by what is written inside): a SYSTEM task runs
        /// what is in it, so nobody else may write there, and its data file holds a password.</summary>
        public virtual void CreateProtectedDirectory(string path)
        {
            if (Directory.Exists(path))
            {
                throw new OpException("Exception", "the task directory exists already: " + path);
            }
            DirectorySecurity acl = new DirectorySecurity();
            acl.SetAccessRuleProtection(true, false);
            foreach (string sid in new string[] { SystemSid, AdministratorsSid })
            {
                acl.AddAccessRule(new FileSystemAccessRule(new SecurityIdentifier(sid), FileSystemRights.FullControl,
                    InheritanceFlags.ContainerInherit | InheritanceFlags.ObjectInherit, PropagationFlags.None,
                    AccessControlType.Allow));
            }
            Directory.CreateDirectory(path, acl);
        }

        // The Task Scheduler 2.0 scripting objects (Schedule.Service, taskschd.dll; Vista and
        // Server 2008 on), late bound through IDispatch: no interop assembly, no `dynamic`
        // (Microsoft.CSharp.dll is not referenced). Chosen over schtasks.exe: state and exit code
        // come as numbers (schtasks /Query prints them localized), the action's path is a
        // property (no /TR quoting, no 262-character limit), and no /ST start time is needed.
        // https://learn.microsoft.com/en-us/windows/win32/taskschd/taskfolder-registertaskdefinition
        private static object Com(object target, string name, BindingFlags kind, params object[] args)
        {
            return target.GetType().InvokeMember(name, kind, null, target, args, CultureInfo.InvariantCulture);
        }

        private static object TaskFolder()
        {
            object service = Activator.CreateInstance(Type.GetTypeFromProgID("Schedule.Service", true));
            Com(service, "Connect", BindingFlags.InvokeMethod);
            return Com(service, "GetFolder", BindingFlags.InvokeMethod, "\\");
        }

        private static object Task(string name)
        {
            return Com(TaskFolder(), "GetTask", BindingFlags.InvokeMethod, name);
        }

        /// <summary>Registers task `name` (no trigger: it runs when RunTask says) that runs
        /// `path` without arguments as SYSTEM (TASK_LOGON_SERVICE_ACCOUNT), stopped by the Task
        /// Scheduler after `limitS` seconds should the session be gone by then.</summary>
        public virtual void RegisterSystemTask(string name, string path, string workingDirectory, long limitS)
        {
            object service = Activator.CreateInstance(Type.GetTypeFromProgID("Schedule.Service", true));
            Com(service, "Connect", BindingFlags.InvokeMethod);
            object folder = Com(service, "GetFolder", BindingFlags.InvokeMethod, "\\");
            object definition = Com(service, "NewTask", BindingFlags.InvokeMethod, 0);
            object settings = Com(definition, "Settings", BindingFlags.GetProperty);
            TimeSpan limit = TimeSpan.FromSeconds(limitS);
            Com(settings, "ExecutionTimeLimit", BindingFlags.SetProperty, string.Format(CultureInfo.InvariantCulture,
                "PT{0}H{1}M{2}S", (long)limit.TotalHours, limit.Minutes, limit.Seconds));
            Com(settings, "DisallowStartIfOnBatteries", BindingFlags.SetProperty, false);
            Com(settings, "StopIfGoingOnBatteries", BindingFlags.SetProperty, false);
            Com(settings, "MultipleInstances", BindingFlags.SetProperty, 2);    // TASK_INSTANCES_IGNORE_NEW
            object principal = Com(definition, "Principal", BindingFlags.GetProperty);
            Com(principal, "LogonType", BindingFlags.SetProperty, 5);          // TASK_LOGON_SERVICE_ACCOUNT
            Com(principal, "RunLevel", BindingFlags.SetProperty, 1);           // TASK_RUNLEVEL_HIGHEST
            object actions = Com(definition, "Actions", BindingFlags.GetProperty);
            object action = Com(actions, "Create", BindingFlags.InvokeMethod, 0);  // TASK_ACTION_EXEC
            Com(action, "Path", BindingFlags.SetProperty, path);
            Com(action, "WorkingDirectory", BindingFlags.SetProperty, workingDirectory);
            // SYSTEM's name is localized on some systems: from its SID
            string system = new SecurityIdentifier(SystemSid).Translate(typeof(NTAccount)).Value;
            Com(folder, "RegisterTaskDefinition", BindingFlags.InvokeMethod, name, definition,
                2, system, null, 5, null);                                     // TASK_CREATE
        }

        public virtual void RunTask(string name)
        {
            Com(Task(name), "Run", BindingFlags.InvokeMethod, new object[] { null });
        }

        public virtual ScheduledTaskStatus GetTaskStatus(string name)
        {
            object task = Task(name);
            ScheduledTaskStatus status = new ScheduledTaskStatus();
            status.State = Convert.ToInt32(Com(task, "State", BindingFlags.GetProperty), CultureInfo.InvariantCulture);
            // an HRESULT may come as an unsigned number
            status.LastResult = unchecked((int)Convert.ToInt64(Com(task, "LastTaskResult", BindingFlags.GetProperty), CultureInfo.InvariantCulture));
            return status;
        }

        public virtual void StopTask(string name)
        {
            Com(Task(name), "Stop", BindingFlags.InvokeMethod, 0);
        }

        public virtual void DeleteTask(string name)
        {
            Com(TaskFolder(), "DeleteTask", BindingFlags.InvokeMethod, name, 0);
        }

        /// <summary>Runs a system tool with fixed, non-secret arguments.</summary>
        public virtual ToolResult RunTool(string file, string[] arguments)
        {
            ProcessStartInfo info = new ProcessStartInfo(file, ProcessOp.Join(arguments));
            info.UseShellExecute = false;
            info.CreateNoWindow = true;
            info.RedirectStandardOutput = true;
            info.RedirectStandardError = true;
            using (Process process = Process.Start(info))
            {
                TailReader stdout = new TailReader(process.StandardOutput, 50);
                TailReader stderr = new TailReader(process.StandardError, 50);
                process.WaitForExit();
                stdout.Wait(5000);
                stderr.Wait(5000);
                ToolResult result = new ToolResult();
                result.ExitCode = process.ExitCode;
                StringBuilder output = new StringBuilder();
                output.Append(string.Join(" ", stdout.Tail())).Append(' ').Append(string.Join(" ", stderr.Tail()));
                result.Output = output.ToString().Trim();
                return result;
            }
        }
    }
}
