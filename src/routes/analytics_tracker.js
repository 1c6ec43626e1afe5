(function(){var d=document,w=window,n=navigator,l=location,h=history,s=d.currentScript,
u=(s&&s.src?s.src:"/api/analytics/script.js").replace(/script\.js([?#].*)?$/,"collect"),
k={us:"utm_source",um:"utm_medium",uc:"utm_campaign",ux:"utm_content",ut:"utm_term"},last;
function send(){var p=l.pathname;if(p===last)return;last=p;
var q=new URLSearchParams(l.search),b={p:p,t:d.title,sw:screen.width,sh:screen.height};
if(d.referrer)b.r=d.referrer;for(var f in k){var v=q.get(k[f]);if(v)b[f]=v}
var j=JSON.stringify(b);try{if(n.sendBeacon&&n.sendBeacon(u,j))return}catch(e){}
try{fetch(u,{method:"POST",body:j,keepalive:true,credentials:"omit",mode:"no-cors"})}catch(e){}}
["pushState","replaceState"].forEach(function(m){var o=h[m];h[m]=function(){var r=o.apply(this,arguments);send();return r}});
w.addEventListener("popstate",send);send()})();
